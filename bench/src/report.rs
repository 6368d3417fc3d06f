//! BENCHMARKS.md: one section per benchmark, between markers, replaced by
//! each run of that benchmark and left alone by the others, so every figure
//! in the file stays next to the command that reproduces it.

use std::path::Path;

/// Where the report lives: the workspace root.
pub fn report_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("BENCHMARKS.md")
}

/// The machine a figure was measured on, for the report.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown memory".to_owned(),
            |kib| format!("{:.1} GiB RAM", kib / 1024.0 / 1024.0),
        );
    format!("{cores} cores, {cpu}, {memory}")
}

/// Replaces (or appends) the section `name` of BENCHMARKS.md with `body`,
/// headed by the command that reproduces it and the date and machine.
pub fn write_section(name: &str, title: &str, command: &str, body: &str) -> anyhow::Result<()> {
    let path = report_path();
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure here was written by `voiceprod-bench`; each section says the command that reproduces it. Ratios compare with a baseline measured in the same run, because these machines are noisy.\n".to_owned()
    });
    let start = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let section = format!(
        "{start}\n## {title}\n\nReproduce: `{command}`  \nMeasured {} on {}.\n\n{}\n{end}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        body.trim_end()
    );
    let updated = match (current.find(&start), current.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{section}{}", &current[..s], &current[e + end.len()..])
        }
        _ => format!("{}\n{section}\n", current.trim_end()),
    };
    std::fs::write(&path, updated)?;
    Ok(())
}

/// The p-th percentile (0–100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The median of samples (NaN when there are none).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    percentile(&samples, 50.0)
}
