//! The gateway's side of streamed speech (`POST /v1/audio/speech`), with
//! the test as the worker: it takes the job from `synth.jobs` and publishes
//! chunks to the job's `streamTo` on `voiceprod.streams`, as a worker does
//! (`shared::streams`), including the ways a render can break.

use serde_json::json;
use uuid::Uuid;

use shared::amqp::{Broker, Publisher};
use shared::ids::GenerationId;
use shared::messages::JobMessage;
use shared::models::Generation;
use shared::streams::{ChunkError, ChunkHeader, encode};

use crate::helpers::*;

/// Plays the worker of one streamed generation.
struct FakeWorker {
    publisher: Publisher,
    exchange: String,
    stream_to: String,
    generation_id: GenerationId,
}

impl FakeWorker {
    /// Takes the next job, which must ask for a stream.
    async fn take_job(app: &TestApp) -> Self {
        let delivery = app.next_job_delivery().await;
        let JobMessage::SynthesizeV1 {
            generation_id,
            stream_to,
            ..
        } = serde_json::from_slice(&delivery.data).unwrap()
        else {
            panic!("not a synthesis job");
        };
        let broker = Broker::new(&app.settings.amqp, "test-worker");
        let exchange = broker.topology().streams_exchange();
        Self {
            publisher: Publisher::new(broker),
            exchange,
            stream_to: stream_to.expect("a speech job asks for a stream"),
            generation_id,
        }
    }

    /// Completes the generation, as a worker does just after its last chunk.
    fn complete(&self, app: &TestApp) {
        let key = format!("audio/{}.pcm", self.generation_id);
        assert!(
            Generation::complete(&mut connect(&app.settings), self.generation_id.0, 1, &key)
                .unwrap()
        );
    }

    async fn send(
        &self,
        attempt: Uuid,
        seq: u32,
        last: bool,
        error: Option<ChunkError>,
        audio: &[u8],
    ) {
        let header = ChunkHeader {
            generation_id: self.generation_id,
            attempt,
            seq,
            last,
            error,
        };
        self.publisher
            .publish_transient(&self.exchange, &self.stream_to, &encode(&header, audio))
            .await
            .unwrap();
    }
}

fn speak(app: &TestApp) -> tokio::task::JoinHandle<reqwest::Response> {
    let request = app
        .client
        .post(format!("{}/v1/audio/speech", app.address))
        .bearer_auth(&app.api_key)
        .json(&json!({"model": "tts-1", "voice": "voice_3c71e9", "input": "Hello there. How are you?", "response_format": "pcm"}));
    tokio::spawn(async move { request.send().await.unwrap() })
}

fn retrying() -> Option<ChunkError> {
    Some(ChunkError {
        code: "synthesis_failed".into(),
        message: "the engine process crashed".into(),
        retrying: true,
    })
}

#[tokio::test]
async fn the_chunks_of_a_render_are_the_answer_and_a_failure_before_any_audio_is_not() {
    let app = spawn_app().await;
    let answer = speak(&app);
    let worker = FakeWorker::take_job(&app).await;

    // The first attempt fails before it has audio; its job is retried and
    // the next attempt streams from 0.
    worker.send(Uuid::new_v4(), 0, false, retrying(), b"").await;
    let second = Uuid::new_v4();
    worker
        .send(second, 0, false, None, b"\x01\x00\x02\x00")
        .await;
    worker.send(second, 1, false, None, b"\x03\x00").await;
    worker.send(second, 2, true, None, b"\x04\x00").await;

    let mut response = answer.await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "audio/L16");
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(
        response.headers()["x-generation-id"].to_str().unwrap(),
        worker.generation_id.to_string()
    );
    let mut body = Vec::new();
    while body.len() < 8 {
        body.extend_from_slice(&response.chunk().await.unwrap().unwrap());
    }
    assert_eq!(&body[..], b"\x01\x00\x02\x00\x03\x00\x04\x00");
    // All the audio is out; the body ends once the generation completed,
    // so a clean end means a completed generation.
    let end = tokio::time::timeout(std::time::Duration::from_millis(500), response.chunk()).await;
    assert!(
        end.is_err(),
        "the body ended before the generation completed: {end:?}"
    );
    worker.complete(&app);
    assert!(response.chunk().await.unwrap().is_none(), "a clean end");
}

#[tokio::test]
async fn a_render_that_breaks_mid_stream_ends_the_answer_as_a_broken_transfer() {
    let app = spawn_app().await;
    // Each way a stream breaks once audio went out: an error, a lost
    // chunk (a gap in the numbers), another attempt's chunk.
    for break_with in ["error", "gap", "other attempt"] {
        let answer = speak(&app);
        let worker = FakeWorker::take_job(&app).await;
        let attempt = Uuid::new_v4();
        worker.send(attempt, 0, false, None, b"\x01\x00").await;
        let mut response = answer.await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{break_with}");
        assert_eq!(&response.chunk().await.unwrap().unwrap()[..], b"\x01\x00");
        match break_with {
            "error" => worker.send(attempt, 1, false, retrying(), b"").await,
            "gap" => worker.send(attempt, 2, true, None, b"\x03\x00").await,
            _ => {
                worker
                    .send(Uuid::new_v4(), 0, false, None, b"\x09\x00")
                    .await
            }
        }
        let rest = response.chunk().await;
        assert!(
            rest.is_err(),
            "{break_with}: the body must end broken, got {rest:?}"
        );
    }
}

fn create_streamed(app: &TestApp, query: &str) -> tokio::task::JoinHandle<reqwest::Response> {
    let request = app
        .client
        .post(format!("{}/v1/generations{query}", app.address))
        .bearer_auth(&app.api_key)
        .json(&json!({"text": "Hello there. How are you?", "voiceId": "voice_3c71e9", "format": "pcm"}));
    tokio::spawn(async move { request.send().await.unwrap() })
}

#[tokio::test]
async fn a_create_with_stream_true_answers_with_the_audio_as_it_is_rendered() {
    let app = spawn_app().await;
    let answer = create_streamed(&app, "?stream=true");
    let worker = FakeWorker::take_job(&app).await;
    let attempt = Uuid::new_v4();
    worker.send(attempt, 0, false, None, b"\x01\x00").await;

    let mut response = answer.await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "audio/L16");
    let id = worker.generation_id.to_string();
    assert_eq!(response.headers()["x-generation-id"].to_str().unwrap(), id);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/v1/generations/{id}")
    );
    assert_eq!(response.headers()["x-credits-charged"], "1");
    // The first chunk is out before the render has finished.
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"\x01\x00");
    worker.send(attempt, 1, true, None, b"\x02\x00").await;
    let second = response.chunk().await.unwrap().unwrap();
    assert_eq!(&second[..], b"\x02\x00");
    worker.complete(&app);
    assert!(response.chunk().await.unwrap().is_none(), "a clean end");
    // It is an ordinary generation of the list, charged once.
    let row = app.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(row["status"], "completed");
    assert_eq!(row["credits"], 1);
}

#[tokio::test]
async fn a_create_without_stream_answers_202_and_a_bad_stream_value_is_400_and_charges_nothing() {
    let app = spawn_app().await;
    let accepted = create_streamed(&app, "?stream=false").await.unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
    let job = app.next_job_delivery().await;
    let JobMessage::SynthesizeV1 { stream_to, .. } = serde_json::from_slice(&job.data).unwrap()
    else {
        panic!("not a synthesis job");
    };
    assert_eq!(stream_to, None, "an unstreamed create asks for no stream");
    let used = || -> i64 {
        use diesel::prelude::*;
        shared::schema::workspaces::table
            .find(
                shared::ids::WorkspaceId::parse(&app.workspace_id)
                    .unwrap()
                    .0,
            )
            .select(shared::schema::workspaces::credits_used)
            .first(&mut connect(&app.settings))
            .unwrap()
    };
    let before = used();

    for query in ["?stream=yes", "?stream=true&stream_format=sse"] {
        let refused = create_streamed(&app, query).await.unwrap();
        assert_eq!(refused.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request", "{query}: {body}");
    }
    assert_eq!(used(), before);
}
