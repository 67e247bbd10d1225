//! Cost of parsing catalog files, hostile and legitimate: wall time per
//! parse and the process's peak RSS. `cargo bench --bench parse`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitbucket_catalogd::{ParseLimits, parse_catalog_file};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn measure(name: &str, input: &str, iterations: u32) {
    let limits = ParseLimits::default();
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            let outcome = black_box(parse_catalog_file(black_box(input.as_bytes()), &limits));
            let elapsed = started.elapsed();
            drop(outcome);
            elapsed
        })
        .collect();
    times.sort();
    let outcome = match parse_catalog_file(input.as_bytes(), &limits) {
        Ok(parsed) => format!(
            "{} documents, {} document errors",
            parsed.documents.len(),
            parsed.errors.len()
        ),
        Err(err) => format!(
            "error: {}",
            err.to_string().chars().take(70).collect::<String>()
        ),
    };
    println!(
        "{name:<34} {:>9} bytes  median {:>9.3} ms  max {:>9.3} ms  peak RSS {:>7} KiB  -> {outcome}",
        input.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        peak_rss_kib(),
    );
}

fn main() {
    let component = |i: usize| {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: service-{i}\n  description: A service\n  tags: [java, web]\n  annotations:\n    example.com/x: \"y\"\nspec:\n  type: service\n  lifecycle: production\n  owner: team-{i}\n  dependsOn: [resource:db-{i}]\n"
        )
    };
    measure("one component", &component(0), 200);
    let many: String = (0..3000)
        .map(|i| component(i) + "---\n")
        .collect::<String>();
    let many = &many[..many.len().min(1024 * 1024 - 1)];
    measure("~1 MiB multi-document file", many, 10);

    let items = vec!["x"; 10_000].join(",");
    let aliases = vec!["*a"; 10_000].join(",");
    measure(
        "alias bomb (10k x 10k)",
        &format!("a: &a [{items}]\nb: [{aliases}]\n"),
        20,
    );
    let laughs: String = (1..10)
        .map(|i| {
            format!(
                "l{i}: &l{i} [*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p}]\n",
                p = i - 1
            )
        })
        .collect();
    measure(
        "billion laughs (9 levels)",
        &format!("l0: &l0 [lol]\n{laughs}"),
        20,
    );
    measure("100k nested [", &"[".repeat(100_000), 20);
    measure("100k nested {a:", &"{a: ".repeat(100_000), 20);
    measure(
        "1000-deep block mapping",
        &(0..1000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect::<String>(),
        20,
    );
}
