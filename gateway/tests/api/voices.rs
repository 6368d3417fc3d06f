//! Voices (catalog, cloning, deletion, isolation), the request-time checks
//! this feature adds to generations (cloned voices, SSML, sample rates per
//! format), and word timestamps (`/alignment`, SRT, WebVTT).

use std::io::Cursor;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use shared::alignment::{Alignment, Word, alignment_key};
use shared::amqp::Broker;
use shared::ids::{GenerationId, WorkspaceId};
use shared::models::Generation;

use crate::helpers::*;

/// A vowel-like tone at `f0` Hz, amplitude-modulated at `syllables` per second.
pub fn voiced_wav(f0: f64, syllables: f64, seconds: f64) -> Vec<u8> {
    let rate = 16_000u32;
    let samples: Vec<i16> = (0..(seconds * f64::from(rate)) as usize)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let env = (std::f64::consts::PI * syllables * t).sin().powi(2);
            let tone: f64 = (1..=6)
                .map(|h| (2.0 * std::f64::consts::PI * f0 * f64::from(h) * t).sin() / f64::from(h))
                .sum();
            (tone * env * 8000.0) as i16
        })
        .collect();
    testkit::wav(&samples, rate)
}

const BOUNDARY: &str = "voiceprod-test-boundary";

/// A multipart/form-data body: text fields, then `samples` files.
pub fn form(fields: &[(&str, &str)], samples: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (i, s) in samples.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"samples\"; filename=\"s{i}.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(s);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub async fn post_voice(app: &TestApp, key: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/voices", app.address))
        .bearer_auth(key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_with(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_catalog_lists_300_presets_with_filters_and_cursor_pagination() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    let mut path = "/v1/voices?type=preset&limit=100".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 100);
        ids.extend(data.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        if page["hasMore"] == false {
            assert!(page["nextCursor"].is_null());
            break;
        }
        let cursor = page["nextCursor"].as_str().unwrap();
        path = format!("/v1/voices?type=preset&limit=100&cursor={cursor}");
    }
    assert!(ids.len() >= 300, "{} presets", ids.len());
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a page repeated a voice");

    let default: Value = app
        .get("/v1/voices/voice_8f2a1c")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &default["type"],
            &default["language"],
            &default["name"],
            &default["engine"]
        ),
        (
            &json!("preset"),
            &json!("en-US"),
            &json!("Joe"),
            &json!("piper")
        )
    );
    assert!(default["description"].is_string() && default["gender"].is_string());

    // The engine filter: the neural default among the piper voices, and
    // the espeak-ng catalog without it.
    let neural: Value = app
        .get("/v1/voices?engine=piper&limit=100")
        .await
        .json()
        .await
        .unwrap();
    let neural = neural["data"].as_array().unwrap();
    assert!(neural.iter().any(|v| v["id"] == "voice_8f2a1c"));
    assert!(neural.iter().all(|v| v["engine"] == "piper"));
    let espeak: Value = app
        .get("/v1/voices?engine=espeak-ng&language=en-US&limit=100")
        .await
        .json()
        .await
        .unwrap();
    let espeak = espeak["data"].as_array().unwrap();
    assert!(espeak.len() >= 3);
    assert!(espeak.iter().all(|v| v["engine"] == "espeak-ng"));
    assert!(espeak.iter().any(|v| v["name"] == "Avery"));
    assert_error(
        app.get("/v1/voices?engine=wavenet").await,
        400,
        "invalid_engine",
    )
    .await;

    let french: Value = app
        .get("/v1/voices?language=fr&gender=female&limit=100")
        .await
        .json()
        .await
        .unwrap();
    let french = french["data"].as_array().unwrap();
    assert!(french.len() >= 3);
    assert!(
        french
            .iter()
            .all(|v| v["language"].as_str().unwrap().starts_with("fr-") && v["gender"] == "female")
    );

    assert_error(app.get("/v1/voices?type=robot").await, 400, "invalid_type").await;
    assert_error(
        app.get("/v1/voices?cursor=voice_nope").await,
        400,
        "invalid_cursor",
    )
    .await;
    assert_error(app.get("/v1/voices/voice_000000").await, 404, "not_found").await;
    let no_scope = key_with_scopes(&app, &["generations:read"]);
    assert_error(
        get_with(&app, &no_scope, "/v1/voices").await,
        403,
        "insufficient_scope",
    )
    .await;
}

/// A queue on the app's events exchange bound to `voice.ready`.
async fn voice_ready_tap(app: &TestApp) -> (lapin::Channel, lapin::Consumer) {
    let broker = Broker::new(&app.settings.amqp, "test-voice-tap");
    testkit::event_tap(&broker, "voice.ready").await
}

#[tokio::test]
async fn a_voice_cloned_from_wav_samples_is_announced_and_usable_in_its_workspace_only() {
    let app = spawn_app().await;
    let (_ch, mut tap) = voice_ready_tap(&app).await;
    let samples = vec![voiced_wav(118.0, 4.5, 4.0), voiced_wav(122.0, 4.5, 3.0)];

    let response = post_voice(
        &app,
        &app.api_key,
        form(
            &[
                ("name", "Narrator"),
                ("language", "en-GB"),
                ("engine", "espeak-ng"),
            ],
            &samples,
        ),
    )
    .await;

    assert_eq!(response.status().as_u16(), 201);
    let voice: Value = response.json().await.unwrap();
    let id = voice["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("voice_") && id.len() == 38, "{id}");
    assert_eq!(
        (
            &voice["type"],
            &voice["status"],
            &voice["language"],
            &voice["name"]
        ),
        (
            &json!("cloned"),
            &json!("ready"),
            &json!("en-GB"),
            &json!("Narrator")
        )
    );
    let median = voice["analysis"]["pitchMedianHz"].as_f64().unwrap();
    assert!((110.0..130.0).contains(&median), "median {median}");

    let delivery = tokio::time::timeout(Duration::from_secs(10), tap.next())
        .await
        .expect("no voice.ready within 10 s")
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(event["event"], "voice.ready");
    assert_eq!(
        event["data"],
        json!({"id": id, "name": "Narrator", "type": "cloned", "language": "en-GB", "status": "ready", "engine": "espeak-ng"})
    );

    let listed: Value = app
        .get("/v1/voices?type=cloned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let body = json!({ "text": SEED_TEXT, "voiceId": id, "format": "wav" });
    assert_eq!(app.post_generation(&body).await.status().as_u16(), 202);

    // Another workspace sees nothing of it.
    let (_, other) = new_workspace(&app.settings, "other", "scale");
    assert_error(
        get_with(&app, &other, &format!("/v1/voices/{id}")).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.post_generation_with_key(&body, &other).await,
        422,
        "unknown_voice",
    )
    .await;
    let other_list: Value = get_with(&app, &other, "/v1/voices?type=cloned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_list["data"], json!([]));
    let delete = |key: String| {
        let (client, url) = (
            app.client.clone(),
            format!("{}/v1/voices/{id}", app.address),
        );
        async move { client.delete(url).bearer_auth(key).send().await.unwrap() }
    };
    assert_error(delete(other.clone()).await, 404, "not_found").await;

    assert_eq!(delete(app.api_key.clone()).await.status().as_u16(), 204);
    assert_error(app.get(&format!("/v1/voices/{id}")).await, 404, "not_found").await;
    assert_error(app.post_generation(&body).await, 422, "unknown_voice").await;
    assert_error(delete(app.api_key.clone()).await, 404, "not_found").await;
}

#[tokio::test]
async fn unusable_samples_are_refused_with_clear_codes() {
    let app = spawn_app().await;
    let good = voiced_wav(200.0, 4.0, 1.0);
    let mut silent = good.clone();
    silent[44..].fill(0);
    // 301 s of 8-bit 8 kHz audio: small, but too long.
    let long = {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for i in 0..8_000 * 301 {
            w.write_sample((i % 50) as i8).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    };
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (
            vec![b"ID3\x04 an mp3 file, not a wav".to_vec()],
            "invalid_sample",
        ),
        (vec![Vec::new()], "empty_sample"),
        (vec![silent], "silent_sample"),
        (vec![long], "samples_too_long"),
        (vec![], "samples_required"),
    ];
    for (samples, code) in cases {
        let body = assert_error(
            post_voice(&app, &app.api_key, form(&[("name", "x")], &samples)).await,
            422,
            code,
        )
        .await;
        assert_eq!(body["error"]["param"], "samples");
    }
    assert_error(
        post_voice(&app, &app.api_key, form(&[], std::slice::from_ref(&good))).await,
        422,
        "invalid_name",
    )
    .await;
    assert_error(
        post_voice(
            &app,
            &app.api_key,
            form(&[("name", "a\u{0}b")], std::slice::from_ref(&good)),
        )
        .await,
        422,
        "invalid_name",
    )
    .await;
    assert_error(
        post_voice(
            &app,
            &app.api_key,
            form(
                &[("name", "x"), ("description", "a\u{1b}[31m")],
                std::slice::from_ref(&good),
            ),
        )
        .await,
        422,
        "invalid_description",
    )
    .await;
    assert_error(
        post_voice(
            &app,
            &app.api_key,
            form(
                &[("name", "x"), ("language", "xx-YY")],
                std::slice::from_ref(&good),
            ),
        )
        .await,
        422,
        "unsupported_language",
    )
    .await;
    let huge = vec![0u8; 10 * 1024 * 1024 + 1];
    assert_error(
        post_voice(&app, &app.api_key, form(&[("name", "x")], &[huge])).await,
        413,
        "sample_too_large",
    )
    .await;
    let as_text = app
        .client
        .post(format!("{}/v1/voices", app.address))
        .bearer_auth(&app.api_key)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_error(as_text, 415, "unsupported_content_type").await;
    // JSON is a design (`design.rs`): without one it is unreadable.
    let as_json = app.post_json("/v1/voices", &json!({"name": "x"})).await;
    assert_error(as_json, 400, "malformed_body").await;
    let read_only = key_with_scopes(&app, &["voices:read"]);
    assert_error(
        post_voice(&app, &read_only, form(&[("name", "x")], &[good])).await,
        403,
        "insufficient_scope",
    )
    .await;
    let list: Value = app
        .get("/v1/voices?type=cloned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]), "a refused voice was stored");
}

#[tokio::test]
async fn generations_check_ssml_and_the_sample_rate_of_the_format_at_request_time() {
    let app = spawn_app().await;
    let post = |body: Value| {
        let app = &app;
        async move { app.post_generation(&body).await }
    };

    let bad_ssml = json!({"text": "<speak>Hello <prosody rate=\"slow\">world</speak>", "textType": "ssml", "voiceId": SEED_VOICE, "format": "wav"});
    let body = assert_error(post(bad_ssml).await, 422, "invalid_ssml").await;
    assert_eq!(body["error"]["param"], "text");
    let ogg_22k =
        json!({"text": "hi", "voiceId": SEED_VOICE, "format": "ogg", "sampleRate": 22050});
    let body = assert_error(post(ogg_22k).await, 422, "unsupported_sample_rate").await;
    assert_eq!(body["error"]["param"], "sampleRate");

    for ok in [
        json!({"text": "<speak>Hi <break time=\"200ms\"/> there</speak>", "textType": "ssml", "voiceId": SEED_VOICE, "format": "flac"}),
        json!({"text": "hi", "voiceId": SEED_VOICE, "format": "ogg", "sampleRate": 24000}),
        json!({"text": "hi", "voiceId": SEED_VOICE, "format": "wav", "sampleRate": 44100}),
        json!({"text": "hi", "voiceId": SEED_VOICE, "format": "mp3", "speed": 2.0}),
    ] {
        let response = post(ok.clone()).await;
        assert_eq!(response.status().as_u16(), 202, "{ok}");
    }
    // A plan without ogg: 403 before any rate check.
    let (_, tiny) = new_workspace(&app.settings, "tiny-ws", "tiny");
    let ogg = json!({"text": "hi", "voiceId": SEED_VOICE, "format": "ogg"});
    assert_error(
        app.post_generation_with_key(&ogg, &tiny).await,
        403,
        "format_not_in_plan",
    )
    .await;
}

#[tokio::test]
async fn alignment_is_served_as_json_srt_and_vtt_once_the_generation_completed() {
    let app = spawn_app().await;
    let created: Value = app.create_seed_generation().await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/generations/{id}/alignment");
    assert_error(app.get(&path).await, 409, "audio_not_ready").await;

    let gid = GenerationId::parse(&id).unwrap();
    let ws = WorkspaceId::parse(&app.workspace_id).unwrap();
    let key = shared::storage::audio_key(ws, gid, shared::formats::AudioFormat::Wav);
    assert!(Generation::complete(&mut connect(&app.settings), gid.0, 1500, key.as_ref()).unwrap());
    assert_error(app.get(&path).await, 404, "not_found").await;
    let word = |w: &str, start_ms, end_ms, char_start, char_end| Word {
        word: w.to_owned(),
        start_ms,
        end_ms,
        char_start,
        char_end,
    };
    let alignment = Alignment {
        duration_ms: 1500,
        words: vec![
            word("Welcome", 50, 600, 0, 7),
            word("home.", 650, 1400, 8, 13),
        ],
    };
    let store = shared::storage::open(&app.settings.storage).unwrap();
    store
        .put(
            &alignment_key(ws, gid),
            serde_json::to_vec(&alignment).unwrap().into(),
        )
        .await
        .unwrap();

    let json: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(json["durationMs"], 1500);
    assert_eq!(
        json["words"][1],
        json!({"word": "home.", "startMs": 650, "endMs": 1400, "charStart": 8, "charEnd": 13})
    );
    let srt = app.get(&format!("{path}?format=srt")).await;
    assert_eq!(
        srt.headers()["content-type"],
        "application/x-subrip; charset=utf-8"
    );
    assert_eq!(
        srt.text().await.unwrap(),
        "1\n00:00:00,050 --> 00:00:01,400\nWelcome home.\n\n"
    );
    let vtt = app.get(&format!("{path}?format=vtt")).await;
    assert_eq!(vtt.headers()["content-type"], "text/vtt; charset=utf-8");
    assert!(
        vtt.text()
            .await
            .unwrap()
            .starts_with("WEBVTT\n\n00:00:00.050 --> 00:00:01.400\nWelcome home.\n")
    );
    assert_error(
        app.get(&format!("{path}?format=docx")).await,
        400,
        "invalid_format",
    )
    .await;

    let (_, other) = new_workspace(&app.settings, "other", "scale");
    assert_error(get_with(&app, &other, &path).await, 404, "not_found").await;
}

/// A request head for `POST /v1/voices` over a raw connection, so a test
/// can send the body as slowly as it likes.
fn upload_head(app: &TestApp, body_len: usize) -> String {
    let host = app.address.trim_start_matches("http://");
    format!(
        "POST /v1/voices HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {body_len}\r\n\
         Connection: close\r\n\r\n",
        app.api_key
    )
}

async fn start_upload(app: &TestApp, body: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(upload_head(app, body.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream
}

#[tokio::test]
async fn uploads_beyond_max_concurrent_uploads_get_503_uploads_busy_with_retry_after() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut settings = settings();
    settings.gateway.max_concurrent_uploads = 1;
    let app = spawn_app_with(settings).await;
    let body = form(
        &[("name", "Held"), ("engine", "espeak-ng")],
        &[voiced_wav(140.0, 4.0, 2.0)],
    );
    let small = || {
        form(
            &[("name", "Next"), ("engine", "espeak-ng")],
            &[voiced_wav(140.0, 4.0, 2.0)],
        )
    };

    // One upload holds the only place while its body trickles in. Its
    // handler may start after a probe's (seconds later on a loaded 2-core
    // machine) and then find the place taken: answered 503 at once, it
    // holds nothing, and is started again.
    let mut held = start_upload(&app, &body).await;
    let deadline = std::time::Instant::now() + testkit::DEADLINE;
    let busy = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no upload refused as busy within {:?}",
            testkit::DEADLINE
        );
        let mut probe = [0u8; 1];
        match held.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            answered => {
                eprintln!("the held upload was answered ({answered:?}); holding again");
                held = start_upload(&app, &body).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let r = post_voice(&app, &app.api_key, small()).await;
        let status = r.status().as_u16();
        if status == 503 {
            break r;
        }
        eprintln!("while one upload is held: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_error(busy, 503, "uploads_busy").await;

    // The held upload completes normally and frees its place.
    held.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let next = post_voice(&app, &app.api_key, small()).await;
    assert_eq!(next.status().as_u16(), 201);

    // A client that goes away mid-body frees its place too.
    let abandoned = start_upload(&app, &body).await;
    drop(abandoned);
    eventually("an upload accepted again", || async {
        let r = post_voice(&app, &app.api_key, small()).await;
        (r.status().as_u16() == 201).then_some(())
    })
    .await;
}

/// A 32-bit float stereo 48 kHz WAV of a voiced tone, `bytes` long or just under.
fn big_wav(bytes: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let frames = (bytes - 64) / 8;
    let mut out = Cursor::new(Vec::with_capacity(bytes));
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..frames {
        let t = i as f32 / 48_000.0;
        let env = (std::f32::consts::PI * 4.0 * t).sin().powi(2);
        let tone = (2.0 * std::f32::consts::PI * 150.0 * t).sin()
            + 0.5 * (2.0 * std::f32::consts::PI * 300.0 * t).sin();
        let v = 0.3 * tone * env;
        w.write_sample(v).unwrap();
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// The gateway binary as a process of its own (so its memory is its own),
/// on this app's database, broker prefix and key service.
async fn gateway_process(app: &TestApp) -> (tokio::process::Child, String) {
    use secrecy::ExposeSecret;
    use tokio::io::AsyncBufReadExt;
    let s = &app.settings;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VOICEPROD__DATABASE__URL", s.database.url.expose_secret())
        .env("VOICEPROD__AMQP__URL", s.amqp.url.expose_secret())
        .env("VOICEPROD__AMQP__PREFIX", &s.amqp.prefix)
        .env("VOICEPROD__AMQP__QUORUM_QUEUES", "false")
        .env("VOICEPROD__AMQP__QUEUE_EXPIRES_MS", "60000")
        .env("VOICEPROD__GATEWAY__HOST", "127.0.0.1")
        .env("VOICEPROD__GATEWAY__PORT", "0")
        .env(
            "VOICEPROD__GATEWAY__KEY_SERVICE_URL",
            &s.gateway.key_service_url,
        )
        .env(
            "VOICEPROD__KEY_SERVICE__INTERNAL_TOKEN",
            s.key_service.internal_token.expose_secret(),
        )
        .env(
            "VOICEPROD__AUDIO_URLS__SIGNING_KEY",
            s.audio_urls.signing_key.expose_secret(),
        )
        .env("VOICEPROD__STORAGE__ROOT", &s.storage.root)
        .env("VOICEPROD__PIPER__VOICES_DIR", &s.piper.voices_dir)
        .env("VOICEPROD__TELEMETRY__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("gateway listening")
                && let Some(rest) = line.split("\"port\":").nth(1)
            {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return digits.parse::<u16>().unwrap();
            }
        }
        panic!("the gateway exited before listening");
    })
    .await
    .expect("the gateway did not start within 30 s");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn a_6_x_10_mb_upload_raises_the_gateways_peak_memory_by_little() {
    let mut settings = settings();
    // The process is configured like a deployment: no built-in secrets.
    settings.key_service.internal_token =
        secrecy::SecretString::from(format!("test-token-{}", uuid::Uuid::new_v4().simple()));
    settings.audio_urls.signing_key =
        secrecy::SecretString::from(format!("test-signing-{}", uuid::Uuid::new_v4().simple()));
    let mut app = spawn_app_with(settings).await;
    let (child, address) = gateway_process(&app).await;
    app.address = address;
    let pid = child.id().unwrap();
    // Warm: one small upload, then the baseline.
    let warm = post_voice(
        &app,
        &app.api_key,
        form(
            &[("name", "Warm"), ("engine", "espeak-ng")],
            &[voiced_wav(140.0, 4.0, 2.0)],
        ),
    )
    .await;
    assert_eq!(warm.status().as_u16(), 201);
    let before = peak_kib(pid);

    let sample = big_wav(10_000_000);
    let samples: Vec<Vec<u8>> = (0..6).map(|_| sample.clone()).collect();
    let response = post_voice(
        &app,
        &app.api_key,
        form(&[("name", "Big"), ("engine", "espeak-ng")], &samples),
    )
    .await;
    assert_eq!(
        response.status().as_u16(),
        201,
        "{:?}",
        response.text().await
    );
    let after = peak_kib(pid);

    let grown_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "gateway VmHWM before {:.1} MiB, after a 6 x 10 MB upload {:.1} MiB (+{grown_mib:.1} MiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(
        grown_mib < 16.0,
        "the upload raised the gateway's peak memory by {grown_mib:.1} MiB"
    );
}
