//! Log search at scale (issue 29, docs/BENCHMARKS.md "Log search"): fills a fresh engine store
//! with `--logs` logs (1,000,000 by default), each its own JSON body of about 700 bytes naming
//! one of 40,000 patients, then measures, in alternating rounds on the same store:
//!
//! * **payload search**: `search_logs` with one term of two words (a patient's full name, about
//!   25 logs each), first page of 50, through the full-text index;
//! * **metadata search**: the first page of 50 of one destination's logs;
//! * **ceiling**: `log(id)`, one log read by its Log ID through its unique index, the plainest
//!   indexed lookup the store has.
//!
//! Not part of any test run: `benches/search.sh` builds it in release mode and runs it.
//!
//! ```sh
//! cargo run --release -p wharf-store --example bench_search -- --logs 1000000 [--postgres URL]
//! ```

use std::time::{Duration, Instant};
use wharf_store::Database;
use wharf_store::engine::{
    EngineStore, EngineStoreOptions, LogRecord, LogSearch, LogStatus, LogType, Write,
};

const FIRST: &[&str] = &[
    "Nila", "Timothy", "Aurelia", "Bram", "Cosima", "Dorian", "Elske", "Fenna", "Gideon", "Hester",
    "Ivo", "Jolien", "Kasper", "Lieke", "Maarten", "Noor", "Otto", "Pien", "Quinten", "Roos",
    "Sem", "Tess", "Umar", "Vera", "Wessel", "Xander", "Yara", "Zeno", "Anouk", "Bas", "Cato",
    "Daan", "Eva", "Floor", "Guus", "Hidde", "Isa", "Jesse", "Kiki", "Lars",
];
const LAST: &[&str] = &[
    "Jonkel",
    "Bixby",
    "Achterberg",
    "Brouwer",
    "Claessen",
    "Dijkstra",
    "Eekhof",
    "Faber",
    "Groen",
    "Hoekstra",
    "Idema",
    "Jansma",
    "Kuiper",
    "Lammers",
    "Mulder",
    "Nijhuis",
    "Oosting",
    "Postma",
    "Quist",
    "Rietveld",
    "Smit",
    "Terpstra",
    "Uiterwijk",
    "Veenstra",
    "Wijnstra",
];

/// xorshift64*: deterministic, so every run searches the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Patient `n` of 40,000: a first name, a last name and a number, so a full name is rare.
fn patient(n: usize) -> (String, String) {
    let first = format!(
        "{}{}",
        FIRST[n % FIRST.len()],
        n / (FIRST.len() * LAST.len())
    );
    let last = LAST[(n / FIRST.len()) % LAST.len()].to_owned();
    (first, last)
}

const PATIENTS: usize = 40_000;
const DESTINATIONS: usize = 8;

fn body(rng: &mut Rng, n: usize) -> (Vec<u8>, usize) {
    let p = rng.below(PATIENTS);
    let (first, last) = patient(p);
    let mrn = rng.next() % 10_000_000;
    let text = format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","EventDateTime":"2026-12-07T12:00:00.000Z","Test":true,"Source":{{"ID":"7ce6f387-c33c-417d-8682-81e83628cbd9","Name":"Bench EHR"}},"Destinations":[{{"ID":"d{d}","Name":"Bench"}}],"FacilityCode":"RES"}},"Patient":{{"Identifiers":[{{"ID":"{mrn}","IDType":"MR"}}],"Demographics":{{"FirstName":"{first}","LastName":"{last}","DOB":"1984-0{m}-1{d}","Sex":"Female","Address":{{"StreetAddress":"{n} Main St","City":"Madison","State":"WI","ZIP":"53703"}},"PhoneNumber":{{"Home":"+1608555{mrn4:04}"}}}},"Notes":["Visit {n}"]}},"Visit":{{"VisitNumber":"{n}","Location":{{"Type":"Inpatient","Facility":"RES General Hospital","Department":"3N","Room":"136"}},"AttendingProvider":{{"ID":"4356789876","IDType":"NPI","FirstName":"Pat","LastName":"Granite"}}}}}}"#,
        d = n % DESTINATIONS,
        m = 1 + n % 9,
        mrn4 = mrn % 10_000,
    );
    (text.into_bytes(), p)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let p50 = percentile(&times, 0.5);
    println!(
        "{name:<18} n={:<5} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        times.len(),
        p50.as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
    p50
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut logs, mut postgres, mut rounds) = (1_000_000usize, None, 5usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--logs" => logs = args.next().and_then(|v| v.parse().ok()).expect("--logs N"),
            "--postgres" => postgres = Some(args.next().expect("--postgres URL")),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            other => panic!("unknown argument {other}: --logs N, --rounds N, --postgres URL"),
        }
    }
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("a temporary directory (BENCH_DIR)");
    let database = match &postgres {
        Some(url) => Database::Postgres(url.clone()),
        None => Database::Sqlite(dir.path().to_owned()),
    };
    let store = EngineStore::open_database(
        &database,
        &EngineStoreOptions {
            work_queues: false,
            ..Default::default()
        },
    )
    .expect("open the store");
    println!("backend {}, {logs} logs", store.backend_name());

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(logs);
    let mut names = vec![0u32; PATIENTS];
    const BATCH: usize = 2000;
    for chunk in 0..logs.div_ceil(BATCH) {
        let batch: Vec<LogRecord> = (chunk * BATCH..((chunk + 1) * BATCH).min(logs))
            .map(|n| {
                let (body, p) = body(&mut rng, n);
                names[p] += 1;
                // Time-ordered, as the engine's Log IDs are.
                let id = uuid::Uuid::now_v7().to_string();
                ids.push(id.clone());
                LogRecord {
                    seq: 0,
                    log_type: LogType::Send,
                    id,
                    organization_id: "bench".into(),
                    destination_id: format!("d{}", n % DESTINATIONS),
                    source: "Bench EHR".into(),
                    data_model: Some("PatientAdmin".into()),
                    event_type: Some("Arrival".into()),
                    content_type: "application/json".into(),
                    body,
                    status: LogStatus::Pending,
                    attempts: 0,
                    next_attempt_at: n as i64,
                    created_at: n as i64,
                    updated_at: n as i64,
                    subscription_id: None,
                    resends: 0,
                }
            })
            .collect();
        store.apply(&[Write::Enqueue(batch)]).expect("enqueue");
        if chunk % 50 == 49 {
            eprintln!(
                "  {} logs, {:.0} s",
                (chunk + 1) * BATCH,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("filled in {:.1} s", started.elapsed().as_secs_f64());

    let (mut payload, mut metadata, mut ceiling) = (Vec::new(), Vec::new(), Vec::new());
    let mut hits = 0usize;
    for _ in 0..rounds {
        for _ in 0..50 {
            let p = rng.below(PATIENTS);
            let (first, last) = patient(p);
            let search = LogSearch {
                terms: vec![format!("{first} {last}")],
                ..Default::default()
            };
            let t = Instant::now();
            let found = store.search_logs("bench", &search, 50).expect("search");
            payload.push(t.elapsed());
            assert_eq!(found.len(), (names[p] as usize).min(50), "{first} {last}");
            hits += found.len();

            let search = LogSearch {
                filter: wharf_store::engine::LogFilter {
                    destination_id: Some(format!("d{}", rng.below(DESTINATIONS))),
                    ..Default::default()
                },
                ..Default::default()
            };
            let t = Instant::now();
            let found = store.search_logs("bench", &search, 50).expect("search");
            metadata.push(t.elapsed());
            assert_eq!(found.len(), 50.min(logs / DESTINATIONS));

            let id = &ids[rng.below(ids.len())];
            let t = Instant::now();
            let found = store.log(id).expect("read");
            ceiling.push(t.elapsed());
            assert!(found.is_some());
        }
    }
    println!(
        "payload searches found {:.1} logs each on average",
        hits as f64 / payload.len() as f64
    );
    let p = summary("payload search", payload);
    let m = summary("metadata search", metadata);
    let c = summary("log by id (ceiling)", ceiling);
    println!(
        "p50 ratios to the ceiling: payload {:.1}x, metadata {:.1}x",
        p.as_secs_f64() / c.as_secs_f64(),
        m.as_secs_f64() / c.as_secs_f64()
    );
}
