//! `TestEnv`: a fresh database, a unique AMQP prefix and a local receiver;
//! `spawn_app` starts a dispatcher on them in-process. Rows the gateway
//! would create (workspaces, endpoints) are inserted directly.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared::amqp::{Broker, Publisher};
use shared::db::{Db, DbError};
use shared::ids::{GenerationId, MessageId, WorkspaceId};
use shared::messages::{Event, EventMessage, EventType};
use shared::models::{
    NewWebhookEndpoint, NewWorkspace, WebhookAttempt, WebhookEndpoint, Workspace,
};
use shared::schema::{webhook_deliveries, webhook_endpoints};
use shared::settings::Settings;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhook_dispatcher::Application;

pub use testkit::eventually;
use testkit::receiver::Receiver;

pub struct TestEnv {
    pub settings: Settings,
    pub db: Db,
    pub receiver: Receiver,
    publisher: Publisher,
}

pub struct RunningApp {
    pub port: u16,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    /// Graceful shutdown; returns once in-flight sends are done.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[derive(Debug, Clone, Queryable)]
pub struct DeliveryRow {
    pub endpoint_id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_response_body: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub last_attempt_at: Option<DateTime<Utc>>,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = tokio::task::spawn_blocking(testkit::test_settings)
            .await
            .unwrap()
            .unwrap();
        tweak(&mut settings);
        let db = Db::new(&settings.database);
        let publisher = Publisher::new(Broker::new(&settings.amqp, "dispatcher-tests"));
        Self {
            settings,
            db,
            receiver: Receiver::start().await,
            publisher,
        }
    }

    pub async fn spawn_app(&self) -> RunningApp {
        let app = Application::build(self.settings.clone()).await.unwrap();
        let port = app.port();
        let stop = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        RunningApp { port, stop, task }
    }

    pub fn state(&self) -> webhook_dispatcher::State {
        webhook_dispatcher::State::new(&self.settings).unwrap()
    }

    pub async fn workspace(&self) -> WorkspaceId {
        let id = Uuid::now_v7();
        self.db
            .run(move |conn| {
                Workspace::insert(
                    conn,
                    &NewWorkspace {
                        id,
                        name: &format!("ws-{id}"),
                        plan: "scale",
                        credits_included: 1000,
                        period_start: Utc::now(),
                    },
                )
                .map_err(DbError::from)
            })
            .await
            .unwrap();
        WorkspaceId(id)
    }

    /// An endpoint at the receiver's `path`; returns its id and secret.
    pub async fn endpoint(&self, ws: WorkspaceId, path: &str, events: &[&str]) -> (Uuid, String) {
        self.endpoint_at(ws, self.receiver.url(path), events).await
    }

    pub async fn endpoint_at(
        &self,
        ws: WorkspaceId,
        url: String,
        events: &[&str],
    ) -> (Uuid, String) {
        let secret = shared::signing::generate_webhook_secret();
        let new = NewWebhookEndpoint {
            id: Uuid::now_v7(),
            workspace_id: ws.0,
            url,
            description: None,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            secret: secret.clone(),
        };
        let row = self
            .db
            .run(move |conn| WebhookEndpoint::insert(conn, &new).map_err(DbError::from))
            .await
            .unwrap();
        (row.id, secret)
    }

    pub async fn disable_endpoint(&self, id: Uuid) {
        self.db
            .run(move |conn| {
                diesel::update(webhook_endpoints::table.find(id))
                    .set(webhook_endpoints::enabled.eq(false))
                    .execute(conn)
                    .map_err(DbError::from)
            })
            .await
            .unwrap();
    }

    pub async fn set_failing_since(&self, id: Uuid, since: DateTime<Utc>) {
        self.db
            .run(move |conn| {
                diesel::update(webhook_endpoints::table.find(id))
                    .set(webhook_endpoints::failing_since.eq(since))
                    .execute(conn)
                    .map_err(DbError::from)
            })
            .await
            .unwrap();
    }

    /// The attempt log of the deliveries of `event`, oldest first.
    pub async fn attempts(&self, event: MessageId) -> Vec<WebhookAttempt> {
        self.db
            .run(move |conn| {
                let ids: Vec<Uuid> = webhook_deliveries::table
                    .filter(webhook_deliveries::event_id.eq(event.0))
                    .select(webhook_deliveries::id)
                    .load(conn)?;
                WebhookAttempt::of_deliveries(conn, &ids).map_err(DbError::from)
            })
            .await
            .unwrap()
    }

    pub async fn endpoint_row(&self, id: Uuid) -> WebhookEndpoint {
        self.db
            .run(move |conn| WebhookEndpoint::find(conn, id).map_err(DbError::from))
            .await
            .unwrap()
            .unwrap()
    }

    /// Publishes to `voiceprod.events` as the worker does.
    pub async fn publish(&self, event: &Event) {
        let topology = self.publisher.broker().topology().clone();
        self.publisher
            .publish(
                &topology.events_exchange(),
                event.event.as_str(),
                &event.id.to_string(),
                &EventMessage::V1(event.clone()),
            )
            .await
            .unwrap();
    }

    pub async fn deliveries(&self, event: MessageId) -> Vec<DeliveryRow> {
        self.db
            .run(move |conn| {
                use webhook_deliveries::dsl as d;
                d::webhook_deliveries
                    .filter(d::event_id.eq(event.0))
                    .select((
                        d::endpoint_id,
                        d::status,
                        d::attempts,
                        d::last_status_code,
                        d::last_error,
                        d::last_response_body,
                        d::last_duration_ms,
                        d::last_attempt_at,
                    ))
                    .load::<DeliveryRow>(conn)
                    .map_err(DbError::from)
            })
            .await
            .unwrap()
    }

    /// The single delivery of `event`, once it is no longer pending.
    pub async fn settled_delivery(&self, event: MessageId) -> DeliveryRow {
        eventually("the delivery to settle", || async {
            self.deliveries(event)
                .await
                .into_iter()
                .find(|d| d.status != "pending")
        })
        .await
    }
}

pub fn event(ws: WorkspaceId, kind: EventType, data: serde_json::Value) -> Event {
    Event {
        id: MessageId::new(),
        event: kind,
        workspace_id: ws,
        occurred_at: Utc::now(),
        data,
        audio_of: None,
        target_endpoint: None,
    }
}

pub fn completed_event(ws: WorkspaceId) -> Event {
    let generation = GenerationId::new();
    let mut e = event(
        ws,
        EventType::GenerationCompleted,
        serde_json::json!({
            "id": generation.to_string(), "status": "completed", "voiceId": "voice_8f2a1c",
            "format": "wav", "durationMs": 4820, "completedAt": "2026-05-29T12:00:03Z"
        }),
    );
    e.audio_of = Some(generation);
    e
}
