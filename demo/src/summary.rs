//! The end of the demo: each step's time, the final table and the agent's writes.

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;

use crate::screen::Screen;
use crate::steps::Steps;

/// Prints the summary below everything else.
pub fn print(s: &mut Screen, steps: &Steps, registry: &Registry, generic: bool) {
    s.clear();
    println!("\nSummary");
    for (title, took) in &steps.done {
        println!("  ✓ {title:<84} {:>5.1}s", took.as_secs_f64());
    }
    println!("\n  Final state:");
    for line in s.table(&steps.targets, &steps.rows) {
        println!("  {line}");
    }
    println!("\n  Agent writes (from its /metrics): {}", writes(registry));
    let command = match generic {
        true => "cargo run -p sync-agent -- --help",
        false => "cargo run -p sync-examples --bin agent -- --help",
    };
    println!("  Run the agent on your clusters: {command}");
}

/// Prints the rows as last seen, when a step did not converge.
pub fn gave_up(s: &mut Screen, steps: &Steps) {
    s.clear();
    println!("\nThe clusters when the demo gave up:");
    for line in s.table(&steps.targets, &steps.rows) {
        println!("  {line}");
    }
}

/// `sync_writes_total`, summed by cluster and resource: "remote: objects 9, status 10; ...".
fn writes(registry: &Registry) -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return "unavailable".to_owned();
    }
    let mut sums = BTreeMap::<(String, String), u64>::new();
    for line in text.lines().filter(|l| l.starts_with("sync_writes_total{")) {
        let label = |k: &str| {
            let value = line.split(&format!("{k}=\"")).nth(1)?.split('"').next()?;
            Some(value.to_lowercase())
        };
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let key = (
            label("cluster").unwrap_or_default(),
            label("resource").unwrap_or_default(),
        );
        *sums.entry(key).or_default() += n;
    }
    let cluster = |name: &str| {
        let parts: Vec<String> = sums
            .iter()
            .filter(|((c, _), _)| c == name)
            .map(|((_, resource), n)| format!("{resource} {n}"))
            .collect();
        let parts = if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        };
        format!("{name}: {parts}")
    };
    format!("{}; {}", cluster("remote"), cluster("local"))
}
