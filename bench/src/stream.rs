//! `voiceprod-bench stream`: time to the first audio byte of a streamed
//! `POST /v1/audio/speech` against the time to the whole answer, for
//! texts of 100, 1,000 and 10,000 characters, on Piper (`voice_8f2a1c`)
//! and on Kokoro (`af_heart`), through the whole stack in this process
//! (gateway, key-service, RabbitMQ, a synth-worker with its engine
//! processes). Both times come from the same requests, so the ratio is
//! what streaming saves on this machine, whatever its load.

use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use crate::report::write_section;
use crate::stack::{self, With};

const COMMAND: &str = "cargo run --release -p bench -- stream";
/// Requests per voice and length after one uncounted warm-up.
const RUNS: usize = 3;

/// Sentences of plain English prose, about `chars` characters.
fn prose(chars: usize) -> String {
    let sentences = [
        "The harbour was quiet in the early morning, and the boats rocked gently at their moorings. ",
        "A fisherman mended his nets while gulls circled above the grey water. ",
        "Further along the quay, a baker opened her shutters and the smell of bread drifted out. ",
        "Children ran past on their way to school, laughing at something only they could see. ",
    ];
    let mut text = String::new();
    for s in sentences.iter().cycle() {
        if text.len() + s.len() > chars {
            break;
        }
        text.push_str(s);
    }
    text.trim_end().to_owned()
}

struct Timing {
    first_ms: f64,
    total_ms: f64,
    audio_s: f64,
}

async fn speak(stack: &stack::Stack, voice: &str, text: &str) -> anyhow::Result<Timing> {
    let client = reqwest::Client::new();
    let sent = Instant::now();
    let mut response = client
        .post(format!("{}/v1/audio/speech", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&json!({"model": "tts-1", "voice": voice, "input": text, "response_format": "pcm"}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 200,
        "speech answered {}: {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    let mut first_ms = None;
    let mut bytes = 0usize;
    while let Some(chunk) = response.chunk().await? {
        if !chunk.is_empty() && first_ms.is_none() {
            first_ms = Some(sent.elapsed().as_secs_f64() * 1e3);
        }
        bytes += chunk.len();
    }
    Ok(Timing {
        first_ms: first_ms.context("no audio")?,
        total_ms: sent.elapsed().as_secs_f64() * 1e3,
        audio_s: bytes as f64 / 2.0 / 24_000.0,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run() -> anyhow::Result<()> {
    let mut settings = stack::settings().await?;
    stack::production_defaults(&mut settings)?;
    settings.gateway.speech_timeout_ms = 600_000;
    let stack = stack::start(
        settings,
        With {
            worker: true,
            dispatcher: false,
        },
        "enterprise",
    )
    .await?;
    // Kokoro renders at ~2-6x real time here: 10,000 characters would be
    // minutes a request, so it is measured to 1,000.
    let cases: [(&str, &str, &[usize]); 2] = [
        (
            "Piper Joe `voice_8f2a1c`",
            "voice_8f2a1c",
            &[100, 1_000, 10_000],
        ),
        ("Kokoro Heart `af_heart`", "af_heart", &[100, 1_000]),
    ];
    let mut rows = String::new();
    for (name, voice, lengths) in cases {
        for &chars in lengths {
            let text = prose(chars);
            speak(&stack, voice, &text).await?;
            let (mut first, mut total, mut audio) = (Vec::new(), Vec::new(), 0.0);
            for _ in 0..RUNS {
                let t = speak(&stack, voice, &text).await?;
                first.push(t.first_ms);
                total.push(t.total_ms);
                audio = t.audio_s;
            }
            let (first, total) = (median(first), median(total));
            println!(
                "{voice} {} chars ({audio:.1} s of audio): first audio {first:.0} ms, whole answer {total:.0} ms ({:.1}x)",
                text.chars().count(),
                total / first
            );
            rows.push_str(&format!(
                "| {name} | {} | {audio:.1} s | **{first:.0} ms** | {total:.0} ms | {:.1} |\n",
                text.chars().count(),
                total / first
            ));
        }
    }
    let body = format!(
        "`POST /v1/audio/speech` with `response_format: \"pcm\"` (24 kHz), one request at a \
         time, through the whole stack in the bench process (gateway, key-service, quorum \
         queues, a synth-worker with the default engines: {}); the median of {RUNS} requests after one uncounted. *First \
         audio*: from just before the POST until the first non-empty body chunk; *whole*: \
         until the body's end, the time a client waited before streaming (the answer came \
         when the file was done).\n\n\
         | voice | characters | audio | first audio | whole answer | whole ÷ first |\n\
         |---|---:|---:|---:|---:|---:|\n{rows}\n\
         Aim (issue 20): first audio ≤ 300 ms warm for 1,000 characters on Piper, \
         independent of the text's length.\n",
        stack::engines(&stack.settings),
    );
    write_section(
        "stream",
        "Streaming: time to the first audio byte",
        COMMAND,
        &body,
    )?;
    Ok(())
}
