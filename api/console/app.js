// Plinth console: a page over the JSON API, in plain JavaScript with no build step and no
// dependency (docs/adr/0011-console.md). Everything shown comes from the API the page calls
// with the signed-in token; everything changed goes through POST /v1/commands. Text from the
// API is only ever set as textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'plinth.token';
const PAGE = 100;

const state = {
  token: null,
  // The highest log position of a command this page submitted: reads pass it as
  // `min_position`, so that what was just changed is shown changed (read-your-writes).
  position: 0,
  tenant: null,
  next: {},
  // The latest load of each list: an answer to an older one (a slow response, overtaken by a
  // newer load of the same list) is dropped instead of mixed in.
  loads: {},
  auditFilters: {},
  history: null,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Talking to the API

class Problem extends Error {
  constructor(status, body) {
    const title = (body && body.title) || `HTTP ${status}`;
    const detail = (body && body.detail) || '';
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

async function api(path, { method = 'GET', body, params = {} } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  if (method === 'GET' && state.position > 0 && path !== '/v1/me') {
    url.searchParams.set('min_position', state.position);
  }
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  for (let attempt = 1; ; attempt += 1) {
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Problem(0, { title: 'The server could not be reached', detail: String(e.message || e) });
    }
    // A read that could not catch up with `min_position` in time (or a database that is
    // briefly away) answers 503 with Retry-After: a read is safe to ask again, a few times.
    if (response.status !== 503 || method !== 'GET' || attempt >= 3) break;
    const seconds = Math.min(Number(response.headers.get('Retry-After')) || 1, 3);
    await new Promise((resolve) => { setTimeout(resolve, seconds * 1000); });
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const problem = new Problem(response.status, data);
    if (response.status === 401) signedOut(problem.message);
    throw problem;
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function code(text) {
  return el('code', { text });
}

function ticket(name) {
  state.loads[name] = (state.loads[name] || 0) + 1;
  const mine = state.loads[name];
  return () => state.loads[name] === mine;
}

function say(node, text) {
  node.textContent = text || '';
}

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------
// Signing in: a pasted token, or `#token=` in the URL (never sent to the server; taken out of
// the address bar at once so that it is not bookmarked, shared or kept in the history).

function tokenFromFragment() {
  if (!window.location.hash.startsWith('#')) return null;
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (!token) return null;
  window.history.replaceState(null, '', window.location.pathname + window.location.search);
  return token;
}

function signedOut(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  // Nothing of the previous user's stays on the page for the next one.
  state.position = 0;
  state.tenant = null;
  state.history = null;
  $('tenant-tree').replaceChildren();
  say($('tenant-title'), 'No tenant selected');
  $('tenant-empty').hidden = false;
  $('tenant-detail').hidden = true;
  $('history').hidden = true;
  $('audit').hidden = true;
  $('commands').hidden = true;
  for (const form of document.querySelectorAll('form.command')) {
    form.reset();
    for (const out of form.querySelectorAll('.outcome, .problem')) say(out, '');
  }
  $('workspace').hidden = true;
  $('whoami').hidden = true;
  $('sign-in').hidden = false;
  say($('sign-in-problem'), message || '');
}

async function signIn(token) {
  state.token = token.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  let me;
  try {
    me = await api('/v1/me');
  } catch (e) {
    signedOut(`This token was refused. ${e.message}`);
    return;
  }
  say($('whoami-subject'), me.subject);
  say($('whoami-id'), me.id);
  $('whoami').hidden = false;
  $('sign-in').hidden = true;
  say($('sign-in-problem'), '');
  $('workspace').hidden = false;
  $('commands').hidden = false;
  await loadRoots();
}

// ---------------------------------------------------------------------------------------------
// The tenant tree (WAI-ARIA tree view): loaded lazily, a page of children at a time, so that a
// platform of 10,000 tenants costs what is expanded, not what exists.

function treeItem(tenant, level) {
  const label = el('span', { class: 'label' },
    el('span', { class: 'twisty', 'aria-hidden': 'true' }),
    el('span', { class: 'name', text: tenant.name }));
  const item = el('li', {
    role: 'treeitem',
    'aria-expanded': 'false',
    'aria-level': String(level),
    'aria-selected': 'false',
    tabindex: '-1',
    'data-id': tenant.id,
    // Its own name, not the text of the whole subtree nested inside it.
    'aria-label': tenant.name,
  }, label);
  if (tenant.lifecycle && tenant.lifecycle !== 'live') {
    label.append(el('span', { class: 'badge', text: tenant.lifecycle }));
  }
  item.tenant = tenant;
  const group = el('ul', { role: 'group', hidden: true });
  item.append(group);
  return item;
}

function moreItem(level, load) {
  const item = el('li', {
    role: 'treeitem',
    'aria-level': String(level),
    tabindex: '-1',
    class: 'more-item',
  }, el('span', { class: 'label', text: 'Load more…' }));
  item.loadMore = load;
  return item;
}

async function loadPage(list, level, path, after) {
  const page = await api(path, { params: { limit: PAGE, after } });
  for (const tenant of page.items) list.append(treeItem(tenant, level));
  if (page.next) {
    const more = moreItem(level, async () => {
      const target = more.parentElement;
      more.remove();
      await loadPage(target, level, path, page.next);
    });
    list.append(more);
  }
  return page.items.length;
}

async function loadRoots() {
  const tree = $('tenant-tree');
  const current = ticket('roots');
  say($('tree-problem'), '');
  try {
    // Into a detached list first, so that an overtaken load leaves nothing behind.
    const fresh = el('ul');
    const count = await loadPage(fresh, 1, '/v1/tenants');
    if (!current()) return;
    tree.replaceChildren(...fresh.children);
    $('tree-empty').hidden = count > 0;
  } catch (e) {
    say($('tree-problem'), e.message);
  }
  const first = tree.querySelector('[role=treeitem]');
  if (first) first.tabIndex = 0;
}

async function expand(item) {
  if (!item.hasAttribute('aria-expanded')) return;
  const group = item.querySelector(':scope > ul');
  if (!item.dataset.loaded) {
    item.dataset.loaded = 'loading';
    try {
      const level = Number(item.getAttribute('aria-level')) + 1;
      const count = await loadPage(group, level, `/v1/tenants/${item.dataset.id}/children`);
      item.dataset.loaded = 'yes';
      if (count === 0) {
        // A leaf: nothing to expand (WAI-ARIA: no aria-expanded on an end node).
        item.removeAttribute('aria-expanded');
        return;
      }
    } catch (e) {
      delete item.dataset.loaded;
      say($('tree-problem'), e.message);
      return;
    }
  }
  group.hidden = false;
  item.setAttribute('aria-expanded', 'true');
}

function collapse(item) {
  if (item.getAttribute('aria-expanded') !== 'true') return;
  item.querySelector(':scope > ul').hidden = true;
  item.setAttribute('aria-expanded', 'false');
}

// Forgets what was loaded under `item` (the root list when null), and loads it again.
async function reloadChildren(parentId) {
  if (!parentId) {
    await loadRoots();
    return;
  }
  const item = document.querySelector(`#tenant-tree [data-id="${CSS.escape(parentId)}"]`);
  if (!item) return;
  item.querySelector(':scope > ul').replaceChildren();
  delete item.dataset.loaded;
  item.setAttribute('aria-expanded', 'false');
  await expand(item);
}

function visibleItems() {
  return [...document.querySelectorAll('#tenant-tree [role=treeitem]')].filter(
    (item) => !item.closest('ul[hidden]'),
  );
}

function focusItem(item) {
  if (!item) return;
  for (const other of document.querySelectorAll('#tenant-tree [tabindex="0"]')) other.tabIndex = -1;
  item.tabIndex = 0;
  item.focus();
}

async function activate(item) {
  if (item.loadMore) {
    const previous = item.previousElementSibling;
    await item.loadMore();
    focusItem(previous ? previous.nextElementSibling : item.parentElement.firstElementChild);
    return;
  }
  for (const other of document.querySelectorAll('#tenant-tree [aria-selected="true"]')) {
    other.setAttribute('aria-selected', 'false');
  }
  item.setAttribute('aria-selected', 'true');
  focusItem(item);
  await selectTenant(item.tenant);
}

function onTreeKey(event) {
  const item = event.target.closest('[role=treeitem]');
  if (!item) return;
  const items = visibleItems();
  const at = items.indexOf(item);
  switch (event.key) {
    case 'ArrowDown': focusItem(items[at + 1]); break;
    case 'ArrowUp': focusItem(items[at - 1]); break;
    case 'Home': focusItem(items[0]); break;
    case 'End': focusItem(items[items.length - 1]); break;
    case 'ArrowRight':
      if (item.getAttribute('aria-expanded') === 'false') expand(item);
      else if (item.getAttribute('aria-expanded') === 'true') {
        focusItem(item.querySelector(':scope > ul > [role=treeitem]'));
      }
      break;
    case 'ArrowLeft':
      if (item.getAttribute('aria-expanded') === 'true') collapse(item);
      else focusItem(item.parentElement.closest('[role=treeitem]'));
      break;
    case 'Enter':
    case ' ':
      activate(item);
      break;
    default:
      return;
  }
  event.preventDefault();
}

function onTreeClick(event) {
  const item = event.target.closest('[role=treeitem]');
  if (!item) return;
  event.stopPropagation();
  if (event.target.closest('.twisty') && item.hasAttribute('aria-expanded')) {
    if (item.getAttribute('aria-expanded') === 'true') collapse(item);
    else expand(item);
    focusItem(item);
    return;
  }
  activate(item);
}

// ---------------------------------------------------------------------------------------------
// A tenant: its facts, locations, resource providers, providers, grants and metadata

async function selectTenant(tenant) {
  state.tenant = tenant;
  for (const input of document.querySelectorAll('[data-fill=tenant]')) input.value = tenant.id;
  $('tenant-empty').hidden = true;
  $('tenant-detail').hidden = false;
  $('audit').hidden = false;
  say($('tenant-title'), `Tenant ${tenant.name}`);
  await refreshTenant();
  showHistory('tenants', tenant.id, tenant.name);
}

async function refreshTenant() {
  const tenant = state.tenant;
  if (!tenant) return;
  await Promise.all([
    loadFacts(tenant.id),
    loadTable('locations', `/v1/tenants/${tenant.id}/locations`, locationRow, true),
    loadTable('resource-providers', `/v1/tenants/${tenant.id}/resource-providers`, resourceProviderRow, true),
    loadTable('providers', `/v1/tenants/${tenant.id}/providers`, providerRow, true),
    loadGrants(true),
    loadAudit(true),
  ]);
}

async function loadFacts(id) {
  const facts = $('tenant-facts');
  const current = ticket('facts');
  let detail;
  try {
    detail = await api(`/v1/tenants/${id}`);
    if (!current()) return;
  } catch (e) {
    if (!current()) return;
    facts.replaceChildren(el('dt', { text: 'Problem' }), el('dd', { class: 'problem', text: e.message }));
    return;
  }
  const rows = [
    ['Id', code(detail.id)],
    ['Parent', detail.parent_id ? code(detail.parent_id) : 'none (a root tenant)'],
    ['Description', detail.description || '—'],
    ['Lifecycle', detail.lifecycle],
    ['Created', when(detail.created_at)],
    ['Updated', when(detail.updated_at)],
  ];
  facts.replaceChildren(...rows.flatMap(([name, value]) => [el('dt', { text: name }), el('dd', {}, value)]));
  renderMetadata(detail.metadata);
}

function renderMetadata(metadata) {
  const box = $('metadata');
  const m = metadata || {};
  const annotations = Object.entries(m.annotations || {});
  const statuses = Object.entries(m.statuses || {});
  const finalizers = m.finalizers || [];
  const parts = [];
  parts.push(el('h4', { text: 'Annotations' }));
  parts.push(annotations.length
    ? el('dl', { class: 'facts' }, ...annotations.flatMap(([k, v]) => [el('dt', {}, code(k)), el('dd', { text: String(v) })]))
    : el('p', { text: 'none' }));
  parts.push(el('h4', { text: 'Statuses' }));
  parts.push(statuses.length
    ? el('dl', { class: 'facts' }, ...statuses.flatMap(([k, v]) => [el('dt', {}, code(k)), el('dd', {}, el('pre', { text: JSON.stringify(v, null, 2) }))]))
    : el('p', { text: 'none' }));
  parts.push(el('h4', { text: 'Finalizers' }));
  parts.push(finalizers.length ? el('ul', {}, ...finalizers.map((f) => el('li', {}, code(f)))) : el('p', { text: 'none' }));
  if (m.deletion_requested_at) {
    parts.push(el('p', { class: 'problem', text: `Deletion requested at ${when(m.deletion_requested_at)}` }));
  }
  box.replaceChildren(...parts);
}

function historyButton(kind, id, name) {
  const button = el('button', { type: 'button', class: 'small', text: 'History', 'aria-label': `History of ${name}` });
  button.addEventListener('click', () => showHistory(kind, id, name));
  return button;
}

function locationRow(l) {
  return el('tr', { 'data-id': l.id },
    el('td', { text: l.name }),
    el('td', {}, code(l.id)),
    el('td', { class: `via via-${l.via}`, text: l.via }),
    el('td', {}, code(l.tenant_id)),
    el('td', {}, historyButton('locations', l.id, l.name)));
}

function yesNo(value) {
  return el('td', { class: value ? 'yes' : 'no', text: value ? 'yes' : 'no' });
}

function resourceProviderRow(rp) {
  return el('tr', { 'data-id': rp.id },
    el('td', { text: rp.name }),
    el('td', {}, code(rp.id)),
    yesNo(rp.available),
    yesNo(rp.authorized),
    el('td', { text: (rp.scopes || []).join(' ') || '—' }),
    el('td', { text: (rp.requested_scopes || []).join(' ') }),
    el('td', {}, historyButton('resource-providers', rp.id, rp.name)));
}

function providerRow(p) {
  return el('tr', { 'data-id': p.id },
    el('td', { text: p.name }),
    el('td', {}, code(p.id)),
    el('td', {}, code(p.resource_provider_id)),
    el('td', { text: p.via }));
}

function grantRow(g) {
  const who = g.subject ? `${g.subject} ` : '';
  return el('tr', {},
    el('td', {}, who, code(g.user_id)),
    el('td', { text: g.role }),
    el('td', {}, code(g.source_tenant_id), g.inherited ? ' (inherited)' : ''));
}

// Loads the first page (fresh) or the next page of a table; "More …" shows while there is one.
async function loadTable(name, path, row, fresh) {
  const table = $(name);
  const body = table.querySelector('tbody');
  const more = document.querySelector(`[data-more="${name}"]`);
  const current = ticket(name);
  if (fresh) state.next[name] = undefined;
  try {
    const page = await api(path, { params: { limit: PAGE, after: state.next[name] } });
    if (!current()) return true;
    if (fresh) body.replaceChildren();
    for (const item of page.items) body.append(row(item));
    if (fresh && page.items.length === 0) {
      body.append(el('tr', { class: 'empty' }, el('td', { colspan: String(table.tHead.rows[0].cells.length), text: 'none' })));
    }
    state.next[name] = page.next;
    more.hidden = !page.next;
    return true;
  } catch (e) {
    if (!current()) return true;
    body.replaceChildren(el('tr', {}, el('td', { class: 'problem', colspan: String(table.tHead.rows[0].cells.length), text: e.message })));
    more.hidden = true;
    return false;
  }
}

async function loadGrants(fresh) {
  say($('grants-note'), '');
  // Only a tenant's administrators may list its grants: the API's 403 says so, shown as is.
  const ok = await loadTable('grants', `/v1/tenants/${state.tenant.id}/grants`, grantRow, fresh);
  if (!ok) say($('grants-note'), 'Grants are listed for the tenant\'s administrators.');
}

// ---------------------------------------------------------------------------------------------
// The audit timeline of the selected tenant's subtree, with the audit route's filters

function auditItem(event) {
  const summary = el('summary', {},
    el('time', { datetime: event.recorded_at, text: when(event.recorded_at) }), ' ',
    el('strong', { text: event.event_type }), ' on ', code(event.stream_id),
    ` v${event.stream_version}`, event.actor ? ' by ' : '', event.actor ? code(event.actor) : null);
  return el('li', { 'data-position': String(event.position) },
    el('details', {}, summary, el('pre', { text: JSON.stringify(event.data, null, 2) })));
}

async function loadAudit(fresh) {
  const list = $('audit-timeline');
  const more = document.querySelector('[data-more="audit"]');
  const current = ticket('audit');
  if (fresh) state.next.audit = undefined;
  try {
    const page = await api('/v1/audit', {
      params: { tenant_id: state.tenant.id, ...state.auditFilters, limit: 50, after: state.next.audit },
    });
    if (!current()) return;
    say($('audit-problem'), '');
    if (fresh) list.replaceChildren();
    for (const event of page.items) list.append(auditItem(event));
    if (fresh && page.items.length === 0) list.append(el('li', { text: 'No event matches.' }));
    state.next.audit = page.next;
    more.hidden = !page.next;
  } catch (e) {
    if (!current()) return;
    if (fresh) list.replaceChildren();
    say($('audit-problem'), e.message);
    more.hidden = true;
  }
}

function onAuditFilters(event) {
  event.preventDefault();
  const form = event.target;
  const filters = {};
  for (const input of form.querySelectorAll('input')) {
    const value = input.value.trim();
    if (!value) continue;
    // datetime-local is the browser's local time: the API takes RFC 3339.
    filters[input.name] = input.type === 'datetime-local' ? new Date(value).toISOString() : value;
  }
  state.auditFilters = filters;
  loadAudit(true);
}

// ---------------------------------------------------------------------------------------------
// A resource's history: its stream's versions, and an "as of" slider that folds the stream up
// to the chosen version (the API's temporal read, `?as_of_position=`).

async function showHistory(kind, id, name) {
  const section = $('history');
  section.hidden = false;
  say($('history-problem'), '');
  say($('history-of'), `${name} (${id})`);
  const versions = [];
  let after;
  try {
    // A stream's events, oldest first; bounded, as a person reads no more than this.
    for (let pages = 0; pages < 10; pages += 1) {
      const page = await api(`/v1/streams/${id}/events`, { params: { limit: 1000, after } });
      versions.push(...page.items);
      after = page.next;
      if (!after) break;
    }
  } catch (e) {
    say($('history-problem'), e.message);
    return;
  }
  state.history = { kind, id, versions };
  const slider = $('history-slider');
  slider.min = '1';
  slider.max = String(Math.max(versions.length, 1));
  slider.value = slider.max;
  slider.disabled = versions.length < 2;
  await showVersion();
}

async function showVersion() {
  const history = state.history;
  if (!history || history.versions.length === 0) return;
  const slider = $('history-slider');
  const index = Number(slider.value) - 1;
  const event = history.versions[index];
  say($('history-version'), `${index + 1} of ${history.versions.length}`);
  slider.setAttribute('aria-valuetext', `version ${index + 1} of ${history.versions.length}, ${event.event_type}`);
  say($('history-event'), `${event.event_type} at ${when(event.recorded_at)} (log position ${event.position})`);
  try {
    const then = await api(`/v1/${history.kind}/${history.id}`, { params: { as_of_position: event.position } });
    if (state.history === history && Number(slider.value) - 1 === index) {
      say($('history-state'), JSON.stringify(then, null, 2));
      say($('history-problem'), '');
    }
  } catch (e) {
    say($('history-problem'), e.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands: each form posts `{"type": form's data-command, "data": its fields}`; the API's
// problem (title and detail) is shown next to the form that caused it.

function commandData(form) {
  const data = {};
  for (const input of form.querySelectorAll('input[name], select[name]')) {
    if (input.type === 'checkbox') {
      data[input.name] = input.checked;
      continue;
    }
    const value = input.value.trim();
    if (input.dataset.kind === 'list') {
      const items = value.split(/[\s,]+/).filter(Boolean);
      if (items.length) data[input.name] = items;
    } else if (value) {
      data[input.name] = value;
    }
  }
  return data;
}

async function onCommand(event) {
  event.preventDefault();
  const form = event.target;
  const type = form.dataset.command;
  const outcome = form.querySelector('.outcome');
  const problem = form.querySelector('.problem');
  const button = form.querySelector('button[type=submit]');
  say(outcome, '');
  say(problem, '');
  button.disabled = true;
  const data = commandData(form);
  try {
    const result = await api('/v1/commands', { method: 'POST', body: { type, data } });
    state.position = Math.max(state.position, result.position || 0);
    say(outcome, `Done: ${type}, ${result.aggregate_id}`);
    outcome.dataset.id = result.aggregate_id;
    if (type === 'CreateTenant') await reloadChildren(data.parent_id);
    await refreshTenant();
  } catch (e) {
    say(problem, e.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------

function start() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('token-input').value);
  });
  $('sign-out').addEventListener('click', () => signedOut('Signed out.'));
  const tree = $('tenant-tree');
  tree.addEventListener('keydown', onTreeKey);
  tree.addEventListener('click', onTreeClick);
  $('audit-filters').addEventListener('submit', onAuditFilters);
  $('history-slider').addEventListener('input', showVersion);
  for (const form of document.querySelectorAll('form.command')) form.addEventListener('submit', onCommand);
  for (const more of document.querySelectorAll('[data-more]')) {
    more.addEventListener('click', () => {
      const name = more.dataset.more;
      const id = state.tenant.id;
      if (name === 'audit') loadAudit(false);
      else if (name === 'grants') loadGrants(false);
      else if (name === 'locations') loadTable(name, `/v1/tenants/${id}/locations`, locationRow, false);
      else if (name === 'resource-providers') loadTable(name, `/v1/tenants/${id}/resource-providers`, resourceProviderRow, false);
      else if (name === 'providers') loadTable(name, `/v1/tenants/${id}/providers`, providerRow, false);
    });
  }

  const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else signedOut('');
}

start();
