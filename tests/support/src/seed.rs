//! A large log in little time, generated inside PostgreSQL: for the relay's benchmark and
//! tests, which need many events but no read models.

use deadpool_postgres::Pool;

use plinth_domain::{LocationId, ProviderId, ResourceProviderId, TenantId};

/// Appends `events` synthetic events to the log, spread over `streams` streams of the four
/// resource kinds, generated inside PostgreSQL in chunks of 100,000 (one transaction each).
/// The rows are shaped like real ones (prefixed stream ids, contiguous versions, metadata with
/// command/correlation/causation ids) but bypass the write side: no stream rows, and the hash
/// column holds a dummy, so `plinth audit verify` would reject them. For benchmarks and tests
/// of the relay only. Calling it again continues the same streams.
pub async fn seed_log(pool: &Pool, events: u64, streams: u64) -> anyhow::Result<()> {
    const CHUNK: i64 = 100_000;
    let client = pool.get().await?;
    let already = plinth_commands::log::count(&client).await?;
    let streams = streams.max(1) as i64;
    let statement = client
        .prepare(
            "insert into events (event_id, stream_id, stream_version, event_type, schema_version, data,
                                 metadata, recorded_at, hash)
             select gen_random_uuid(), g.stream_id, g.version,
                    case when g.version = 1 then g.created else 'AnnotationSet' end,
                    case when g.version = 1 and g.created = 'TenantCreated' then $4 else 1 end,
                    case when g.version = 1 and g.created = 'TenantCreated'
                         then json_build_object('tenant_id', g.stream_id, 'name', 'bench ' || g.s,
                                                'description', null, 'parent_id', null,
                                                'path', '[]'::json, 'depth', 0)
                         when g.version = 1
                         then json_build_object(g.field, g.stream_id, 'name', 'bench ' || g.s, 'description', null)
                         else json_build_object('resource_id', g.stream_id, 'key', 'bench.plinth.dev/n',
                                                'value', g.i::text)
                    end,
                    json_build_object('actor', null, 'command_id', g.command_id,
                                      'correlation_id', g.command_id, 'causation_id', g.command_id),
                    clock_timestamp(), '\\x00'::bytea
             from (
                 select i, s, i / $3 + 1 as version, gen_random_uuid() as command_id,
                        ($5::text[])[1 + s % 4]
                            || '-' || lpad(s::text, 21, '0') as stream_id,
                        (array['TenantCreated', 'LocationCreated', 'ResourceProviderCreated',
                               'ProviderRegistered'])[1 + s % 4] as created,
                        (array['tenant_id', 'location_id', 'resource_provider_id', 'provider_id'])[1 + s % 4]
                            as field
                 from (select i, i % $3 as s from generate_series($1::int8, $2::int8) i) x
             ) g
             order by g.i",
        )
        .await?;
    // Roots in the current shape of `TenantCreated`: the relay publishes older shapes upcast,
    // which would measure the upcaster rather than the relay.
    let tenant_created_version = plinth_domain::upcast::current_version("TenantCreated");
    // The four kinds in the order of the statement's arrays of event types and id fields.
    let prefixes: &[&str] = &[
        TenantId::PREFIX,
        LocationId::PREFIX,
        ResourceProviderId::PREFIX,
        ProviderId::PREFIX,
    ];
    let end = already + events as i64;
    let mut from = already;
    while from < end {
        let to = (from + CHUNK).min(end) - 1;
        client
            .execute(
                &statement,
                &[&from, &to, &streams, &tenant_created_version, &prefixes],
            )
            .await?;
        from = to + 1;
    }
    client.batch_execute("analyze events").await?;
    Ok(())
}
