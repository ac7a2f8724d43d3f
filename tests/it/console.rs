//! The console (`GET /`) in a real browser against the real `plinth serve --dev` binary: Debian's
//! headless Chromium, driven through its chromedriver (WebDriver), both started here and both
//! killed at the end, whether the test passes or not. `scripts/chromium-up` installs them.
//!
//! What a person does and sees: opens the link `--dev` prints (signed in as `dev-admin`, the
//! token taken out of the address bar), builds the seed's example (foundational-resources.txt)
//! through the forms, walks the tenant tree with the keyboard, sees Tenant-200's locations and
//! resource providers, moves the "as of" slider over a location's history, filters the audit
//! timeline, and, signed in as someone with no role, sees the API's refusal next to the form.
//! Screenshots go to `<target>/console-screenshots/`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{plinth_binary, synthetic_platform, test_db, HORIZON};

/// The longest any one thing may take to show on the page.
const WAIT: Duration = Duration::from_secs(30);
/// The whole scenario's bound: past it the test fails (and still kills what it started).
const SCENARIO: Duration = Duration::from_secs(300);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A scratch directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plinth-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `plinth serve --dev`, run in a scratch directory (where it keeps `.plinth/dev-secret`).
struct DevServer {
    child: Child,
    /// The console link it printed: `http://ADDRESS/#token=…`.
    link: String,
    base: String,
    dir: Scratch,
}

impl DevServer {
    fn start(database_url: &str) -> Self {
        let dir = Scratch::new("console-dev");
        // Its log, shown when a test fails (see Drop): a server that died says why there.
        let log = std::fs::File::create(dir.0.join("serve.log")).expect("a log file");
        let mut child = Command::new(plinth_binary())
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .current_dir(&dir.0)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            // What `--dev` provides itself: its own secret and administrator, no relay.
            .env_remove("PLINTH_JWT_SECRET")
            .env_remove("PLINTH_JWKS_FILE")
            .env_remove("PLINTH_PLATFORM_ADMINS")
            .env_remove("PLINTH_KAFKA_BROKERS")
            .env_remove("PLINTH_NATS_URL")
            .env_remove("PLINTH_LISTEN")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("plinth serve --dev starts");
        // Its banner, read on a thread so that the wait for it is bounded.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Drains stdout to the end: a pipe closed after the link was read made the server's
            // next write fail, and `plinth serve` panicked on the broken pipe (cold CI, twice).
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            link: String::new(),
            base: String::new(),
            dir,
        };
        let deadline = std::time::Instant::now() + WAIT;
        while server.link.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find("http://").filter(|_| line.contains("#token=")) {
                        server.link = line[at..].trim().to_owned();
                    }
                }
                Err(_) => panic!("plinth serve --dev printed no console link within {WAIT:?}"),
            }
        }
        server.base = server
            .link
            .split_once("/#")
            .expect("a fragment")
            .0
            .to_owned();
        server
    }

    /// A development token for `subject`, signed with the server's own dev secret.
    fn token(&self, subject: &str) -> String {
        let secret = std::fs::read_to_string(self.dir.0.join(".plinth/dev-secret"))
            .expect("--dev wrote its secret");
        plinth_api::auth::mint_dev_token(secret.trim(), subject, 3600).unwrap()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let exited = self.child.try_wait().ok().flatten();
            let log = std::fs::read_to_string(self.dir.0.join("serve.log")).unwrap_or_default();
            eprintln!("plinth serve --dev (exited: {exited:?}) logged:\n{log}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver and the Chromium it starts, in a process group of their own. Dropping it kills
/// the group, then any process still running with this browser's private profile directory
/// (found by that unique path, so nothing else is touched), then removes the profile.
struct Browser {
    driver: Child,
    profile: Scratch,
    url: String,
}

impl Browser {
    async fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: run scripts/chromium-up (scripts/test does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = {
            use std::os::unix::process::CommandExt as _;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts")
        };
        let browser = Self {
            driver,
            profile: Scratch::new("console-chromium"),
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = http
                .get(format!("{}/status", browser.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if status.is_ok_and(|s| s.status().is_success()) {
                return browser;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not answer within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A WebDriver session: a new headless Chromium window of a fixed size.
    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", self.profile.0.display()),
                ],
            }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        tokio::time::timeout(2 * WAIT, builder.connect(&self.url))
            .await
            .unwrap_or_else(|_| panic!("Chromium did not start within {:?}", 2 * WAIT))
            .expect("chromedriver starts a Chromium session")
    }

    /// Processes whose command line names this browser's profile directory.
    fn stragglers(&self) -> Vec<u32> {
        let marker = self.profile.0.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
        for pid in self.stragglers() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The directory screenshots are saved in: `<target>/console-screenshots`.
fn screenshot_dir() -> PathBuf {
    let dir = plinth_binary()
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/plinth")
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page, as the test reads and drives it.
struct Page {
    client: Client,
    shots: PathBuf,
}

impl Page {
    async fn wait_for(&self, xpath: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(xpath))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                self.shot("failure").await;
                // What the tables and problem texts held: the screenshot shows only the part
                // of the page in view.
                let shown = self
                    .client
                    .execute(
                        "return [...document.querySelectorAll('table, .problem')]
                           .map(e => (e.id || e.className) + ': ' + e.innerText).join('\\n')",
                        vec![],
                    )
                    .await
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .unwrap_or_else(|e| format!("(could not read the page: {e})"));
                panic!("nothing on the page matched {xpath} within {WAIT:?}: {e}\nthe page held:\n{shown}");
            }
        }
    }

    async fn text_of(&self, xpath: &str) -> String {
        self.wait_for(xpath).await.text().await.unwrap()
    }

    async fn shot(&self, name: &str) -> PathBuf {
        let path = self.shots.join(format!("{name}.png"));
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(&path, png).unwrap();
        }
        path
    }

    /// Types into the field labelled by id `field` (whatever it held is replaced).
    async fn fill(&self, field: &str, value: &str) {
        let input = self.wait_for(&format!("//*[@id='{field}']")).await;
        input.clear().await.unwrap();
        if !value.is_empty() {
            input.send_keys(value).await.unwrap();
        }
    }

    async fn check(&self, field: &str) {
        let input = self.wait_for(&format!("//*[@id='{field}']")).await;
        if !input.is_selected().await.unwrap() {
            input.click().await.unwrap();
        }
    }

    /// Submits the form of command `command` with its button; returns the new aggregate's id
    /// from the outcome the page shows.
    async fn submit(&self, command: &str) -> String {
        self.press(command).await;
        let form = format!("//form[@data-command='{command}']");
        let done = self
            .wait_for(&format!(
                "{form}//p[@class='outcome' and starts-with(., 'Done:')] | {form}//p[@class='problem' and normalize-space(.) != '']"
            ))
            .await;
        let text = done.text().await.unwrap();
        assert!(text.starts_with("Done:"), "{command} was refused: {text}");
        text.rsplit(", ").next().unwrap().to_owned()
    }

    /// Clicks the form's button once it is enabled: it stays disabled while the form's previous
    /// command and the refresh after it run, and a click on it then does nothing (under load
    /// the second of two quick submits was lost that way, and the wait below matched the
    /// first one's "Done:").
    async fn press(&self, command: &str) {
        self.wait_for(&format!(
            "//form[@data-command='{command}']//button[@type='submit' and not(@disabled)]"
        ))
        .await
        .click()
        .await
        .unwrap();
    }

    async fn count(&self, xpath: &str) -> usize {
        self.client
            .find_all(Locator::XPath(xpath))
            .await
            .unwrap()
            .len()
    }

    /// Waits until `xpath` matches exactly `n` elements.
    async fn wait_for_count(&self, xpath: &str, n: usize) {
        self.wait_for(&format!("/*[count({xpath}) = {n}]")).await;
    }

    /// The tree item of tenant `id`.
    async fn tree_item(&self, id: &str) -> Element {
        self.wait_for(&format!(
            "//ul[@role='tree']//li[@role='treeitem' and @data-id='{id}']"
        ))
        .await
    }

    async fn select_tenant(&self, id: &str, name: &str) {
        let item = self.tree_item(id).await;
        item.find(Locator::Css(":scope > .label .name"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_for(&format!("//h2[@id='tenant-title' and .='Tenant {name}']"))
            .await;
    }
}

#[tokio::test]
async fn a_person_builds_the_seed_example_in_the_console_and_sees_who_may_use_what() {
    // Every change is read back with `min_position`, a wait bounded by the API: held off while
    // another test holds the cluster's snapshot horizon back on purpose.
    let _reading = HORIZON.read().await;
    let db = test_db().await;
    let server = DevServer::start(&db.url);
    let browser = Browser::start().await;
    let client = browser.session().await;
    let page = Page {
        client,
        shots: screenshot_dir(),
    };
    let outcome = tokio::time::timeout(SCENARIO, scenario(&page, &server)).await;
    // Ends the browser session first (then `browser`'s drop kills whatever is left).
    let _ = tokio::time::timeout(WAIT, page.client.clone().close()).await;
    outcome.unwrap_or_else(|_| panic!("the console scenario took longer than {SCENARIO:?}"));
}

async fn scenario(page: &Page, server: &DevServer) {
    // The link `--dev` prints signs in as dev-admin and leaves no token in the address bar.
    assert!(server.link.contains("/#token="), "{}", server.link);
    page.client.goto(&server.link).await.unwrap();
    let subject = page
        .text_of("//strong[@id='whoami-subject' and .='dev-admin']")
        .await;
    assert_eq!(subject, "dev-admin");
    let url = page.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("token"), "the token stayed in {url}");
    assert_eq!(url.fragment(), None, "{url}");

    // A name is text, never markup: shown as typed, and nothing in it runs.
    let hostile = "<img src=x onerror=\"document.title='pwned'\">";
    page.fill("ct-name", hostile).await;
    page.fill("ct-parent", "").await;
    let named = page.submit("CreateTenant").await;
    let label = page
        .tree_item(&named)
        .await
        .find(Locator::Css(":scope > .label .name"))
        .await
        .unwrap();
    assert_eq!(label.text().await.unwrap(), hostile);
    assert_eq!(page.count("//ul[@id='tenant-tree']//img").await, 0);
    assert_eq!(page.client.title().await.unwrap(), "Plinth console");

    // The seed's example, through the forms. Tenant-100, a root:
    page.fill("ct-name", "Tenant-100").await;
    page.fill("ct-parent", "").await;
    let t100 = page.submit("CreateTenant").await;
    assert!(t100.starts_with("tnntten-"), "{t100}");
    page.select_tenant(&t100, "Tenant-100").await;
    // Tenant-200 under it (the parent field was filled from the selection).
    page.fill("ct-name", "Tenant-200").await;
    let t200 = page.submit("CreateTenant").await;
    page.tree_item(&t200).await;
    page.fill("cl-name", "Location-LA").await;
    page.submit("CreateLocation").await;
    page.fill("cl-name", "Location-NY").await;
    let ny = page.submit("CreateLocation").await;
    page.fill("mla-location", &ny).await;
    page.fill("mla-tenant", &t200).await;
    page.check("mla-sub").await;
    page.submit("MakeLocationAvailable").await;
    page.fill("crp-name", "Resource-Provider-LoadBalancers")
        .await;
    page.fill("crp-scopes", "loadbalancer:* network:read instance:read")
        .await;
    let rp = page.submit("CreateResourceProvider").await;
    page.fill("arl-rp", &rp).await;
    page.fill("arl-location", &ny).await;
    page.submit("AddResourceProviderLocation").await;
    page.fill("mrpa-rp", &rp).await;
    page.fill("mrpa-tenant", &t200).await;
    page.submit("MakeResourceProviderAvailable").await;
    for name in ["LB-Provider-Foo", "LB-Provider-Bar"] {
        page.fill("rp-rp", &rp).await;
        page.fill("rp-name", name).await;
        page.submit("RegisterProvider").await;
    }
    // Tenant-100 owns both locations.
    for name in ["Location-LA", "Location-NY"] {
        page.wait_for(&format!(
            "//table[@id='locations']//tr[td[1]='{name}' and td[3]='owned']"
        ))
        .await;
    }

    // The audit timeline of Tenant-100's subtree, filtered by event type: its two locations'
    // creations, and nothing else.
    page.wait_for("//ol[@id='audit-timeline']/li//strong[.='ResourceProviderCreated']")
        .await;
    page.fill("audit-event-type", "LocationCreated").await;
    page.wait_for("//form[@id='audit-filters']//button")
        .await
        .click()
        .await
        .unwrap();
    page.wait_for(
        "//ol[@id='audit-timeline' and count(li) = 2 and count(li//strong[.='LocationCreated']) = 2]",
    )
    .await;

    // The tree, by keyboard only: Left collapses Tenant-100, Right expands it, Down moves to
    // Tenant-200, Enter opens it.
    let item = page.tree_item(&t100).await;
    item.send_keys(&Key::Left.to_string()).await.unwrap();
    page.wait_for(&format!(
        "//li[@data-id='{t100}' and @aria-expanded='false']"
    ))
    .await;
    assert!(!page.tree_item(&t200).await.is_displayed().await.unwrap());
    item.send_keys(&Key::Right.to_string()).await.unwrap();
    page.wait_for(&format!(
        "//li[@data-id='{t100}' and @aria-expanded='true']"
    ))
    .await;
    assert!(page.tree_item(&t200).await.is_displayed().await.unwrap());
    item.send_keys(&Key::Down.to_string()).await.unwrap();
    let focused = page.client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("data-id").await.unwrap().as_deref(),
        Some(&*t200)
    );
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();
    page.wait_for("//h2[@id='tenant-title' and .='Tenant Tenant-200']")
        .await;
    page.wait_for(&format!(
        "//li[@data-id='{t200}' and @aria-selected='true']"
    ))
    .await;

    // Tenant-200 authorizes the resource provider (its id filled in from the selection).
    page.fill("arp-rp", &rp).await;
    page.submit("AuthorizeResourceProvider").await;

    // What a person sees at Tenant-200: Location-NY available (LA is not usable there), the
    // resource provider available and authorized with every scope it requested, and the two
    // load balancer providers.
    page.wait_for(&format!(
        "//table[@id='locations']//tr[@data-id='{ny}' and td[1]='Location-NY' and td[3]='available']"
    ))
    .await;
    let location_rows = page
        .client
        .find_all(Locator::XPath("//table[@id='locations']/tbody/tr"))
        .await
        .unwrap();
    assert_eq!(location_rows.len(), 1, "only Location-NY is usable there");
    let rp_row = page
        .text_of(&format!(
            "//table[@id='resource-providers']//tr[@data-id='{rp}' and td[3]='yes' and td[4]='yes']"
        ))
        .await;
    assert!(
        rp_row.contains("instance:read loadbalancer:* network:read"),
        "{rp_row}"
    );
    for name in ["LB-Provider-Foo", "LB-Provider-Bar"] {
        page.wait_for(&format!("//table[@id='providers']//tr[td[1]='{name}']"))
            .await;
    }
    page.client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    page.shot("tenant-200").await;

    // Location-NY's history: version 1 (created) was available to nobody, version 2 to
    // Tenant-200, read through the "as of" slider.
    page.wait_for(&format!(
        "//table[@id='locations']//tr[@data-id='{ny}']//button[.='History']"
    ))
    .await
    .click()
    .await
    .unwrap();
    page.wait_for(&format!("//p[@id='history-of' and contains(., '{ny}')]"))
        .await;
    page.wait_for("//output[@id='history-version' and .='2 of 2']")
        .await;
    page.wait_for(&format!(
        "//pre[@id='history-state' and contains(., '\"id\": \"{ny}\"') and contains(., '{t200}')]"
    ))
    .await;
    let slider = page.wait_for("//input[@id='history-slider']").await;
    slider.send_keys(&Key::Home.to_string()).await.unwrap();
    page.wait_for("//output[@id='history-version' and .='1 of 2']")
        .await;
    page.wait_for("//p[@id='history-event' and starts-with(., 'LocationCreated')]")
        .await;
    page.wait_for(&format!(
        "//pre[@id='history-state' and contains(., '\"available_to\": []') and not(contains(., '{t200}'))]"
    ))
    .await;
    page.shot("history").await;

    // A pasted token that does not verify is refused, with the API's reason.
    page.wait_for("//button[@id='sign-out']")
        .await
        .click()
        .await
        .unwrap();
    page.fill("token-input", "not-a-token").await;
    page.wait_for("//form[@id='sign-in-form']//button")
        .await
        .click()
        .await
        .unwrap();
    page.wait_for(
        "//p[@id='sign-in-problem' and starts-with(., 'This token was refused. Unauthorized')]",
    )
    .await;

    // Someone with no role signs in by pasting a token, sees no tenant, and tries to add a
    // location to Tenant-100: the API's problem shows next to the form, word for word.
    let mallory = server.token("mallory");
    page.fill("token-input", &mallory).await;
    page.wait_for("//form[@id='sign-in-form']//button")
        .await
        .click()
        .await
        .unwrap();
    page.wait_for("//strong[@id='whoami-subject' and .='mallory']")
        .await;
    let empty = page
        .wait_for("//p[@id='tree-empty' and .='No tenant is visible to you yet.']")
        .await;
    assert!(empty.is_displayed().await.unwrap());
    page.fill("cl-tenant", &t100).await;
    page.fill("cl-name", "Location-Sneaky").await;
    page.press("CreateLocation").await;
    let shown = page
        .text_of("//form[@data-command='CreateLocation']//p[@class='problem' and normalize-space(.) != '']")
        .await;
    let refusal: Value = reqwest::Client::new()
        .post(format!("{}/v1/commands", server.base))
        .bearer_auth(&mallory)
        .json(&json!({"type": "CreateLocation", "data": {"tenant_id": t100, "name": "Location-Sneaky"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refusal["status"], 403, "{refusal}");
    assert_eq!(
        shown,
        format!(
            "{}: {}",
            refusal["title"].as_str().unwrap(),
            refusal["detail"].as_str().unwrap()
        )
    );
    page.shot("refused").await;
}

#[tokio::test]
async fn the_console_is_served_with_a_policy_that_allows_only_its_own_scripts() {
    let app = crate::support::spawn_app().await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    // Every script and sheet the page loads is served by the binary itself.
    for asset in ["/console/app.js", "/console/style.css"] {
        assert!(html.contains(&format!("\"{asset}\"")), "{asset} not linked");
        let reply = http
            .get(format!("{}{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{asset}");
        assert!(!reply.text().await.unwrap().is_empty());
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page links elsewhere"
    );
    assert!(
        !html.contains("<script>"),
        "inline script would be refused by the policy"
    );
}

#[tokio::test]
async fn a_tree_of_ten_thousand_tenants_is_loaded_a_page_at_a_time_as_it_is_walked_by_keyboard() {
    let db = test_db().await;
    // A 10-ary tree of 10,000 tenants under one root, written straight into the log.
    let platform = {
        let _writing = HORIZON.write().await;
        synthetic_platform(&db, 12_000, 10_000, 10).await
    };
    let _reading = HORIZON.read().await;
    let server = DevServer::start(&db.url);
    // And 120 more roots beside it: the roots come in two pages of the console's 100.
    let admin = server.token("dev-admin");
    let http = reqwest::Client::new();
    let mut last = 0;
    for i in 0..120 {
        let reply: Value = http
            .post(format!("{}/v1/commands", server.base))
            .bearer_auth(&admin)
            .json(&json!({"type": "CreateTenant", "data": {"name": format!("Root-{i:03}")}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        last = reply["position"].as_i64().expect("created");
    }
    // Loaded once the projection has the last of them.
    let settled = http
        .get(format!("{}/v1/tenants?min_position={last}", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(settled.status(), 200);

    let browser = Browser::start().await;
    let page = Page {
        client: browser.session().await,
        shots: screenshot_dir(),
    };
    let outcome = tokio::time::timeout(SCENARIO, async {
        page.client.goto(&server.link).await.unwrap();
        let roots = "//ul[@id='tenant-tree']/li[@role='treeitem' and @data-id]";
        let more = "//ul[@id='tenant-tree']/li[contains(@class, 'more-item')]";
        page.wait_for(more).await;
        assert_eq!(page.count(roots).await, 100, "the first page of roots");
        // End moves to the last item, "Load more…"; Enter loads the next page and focuses
        // the first tenant of it.
        let first = page.wait_for(roots).await;
        first.send_keys(&Key::End.to_string()).await.unwrap();
        let focused = page.client.active_element().await.unwrap();
        assert_eq!(
            focused.attr("class").await.unwrap().as_deref(),
            Some("more-item")
        );
        focused.send_keys(&Key::Enter.to_string()).await.unwrap();
        page.wait_for_count(roots, 121).await;
        assert_eq!(page.count(more).await, 0, "two pages hold every root");
        let focused = page.client.active_element().await.unwrap();
        assert!(focused.attr("data-id").await.unwrap().is_some());

        // The synthetic tree's root: Right loads its 10 children, Down moves to the first,
        // Right loads that one's 10.
        let root = platform.tenants[0].to_string();
        let item = page.tree_item(&root).await;
        item.send_keys(&Key::Right.to_string()).await.unwrap();
        let children = format!("//li[@data-id='{root}']/ul/li[@role='treeitem']");
        page.wait_for_count(&children, 10).await;
        item.send_keys(&Key::Down.to_string()).await.unwrap();
        let child = page.client.active_element().await.unwrap();
        assert_eq!(
            child.attr("aria-level").await.unwrap().as_deref(),
            Some("2")
        );
        let child_id = child.attr("data-id").await.unwrap().unwrap();
        child.send_keys(&Key::Right.to_string()).await.unwrap();
        page.wait_for_count(
            &format!("//li[@data-id='{child_id}']/ul/li[@role='treeitem']"),
            10,
        )
        .await;
        // Of the 10,120 tenants, the page holds what was walked to: 121 roots and 2 × 10.
        assert_eq!(page.count("//li[@role='treeitem']").await, 141);
        page.shot("ten-thousand").await;
    })
    .await;
    let _ = tokio::time::timeout(WAIT, page.client.clone().close()).await;
    outcome.unwrap_or_else(|_| panic!("the tree scenario took longer than {SCENARIO:?}"));
}
