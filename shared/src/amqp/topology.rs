//! Exchange and queue names (with the deployment's prefix) and how each is
//! declared: durable, quorum queues with a delivery limit and a
//! dead-letter exchange for jobs and events.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::{BrokerError, Lane};
use crate::settings::AmqpSettings;

/// Exchange and queue names, and how each is declared.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    queue_expires_ms: Option<u64>,
    quorum: bool,
}

impl Topology {
    pub fn new(settings: &AmqpSettings) -> Self {
        Self {
            prefix: settings.prefix.clone(),
            delivery_limit: settings.delivery_limit,
            queue_expires_ms: settings.queue_expires_ms,
            quorum: settings.quorum_queues,
        }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// A queue's name without the deployment's prefix (a metric label).
    pub fn base_name<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }

    /// Direct exchange of synthesis jobs.
    pub fn jobs_exchange(&self) -> String {
        self.name("voiceprod.jobs")
    }
    /// Where workers compete for jobs (the bulk lane).
    pub fn jobs_queue(&self) -> String {
        self.name("synth.jobs")
    }
    /// The queue of a lane's jobs: `synth.jobs` for bulk,
    /// `synth.jobs.interactive` for short texts.
    pub fn lane_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Bulk => self.jobs_queue(),
            Lane::Interactive => self.name("synth.jobs.interactive"),
        }
    }
    /// Dead-letter exchange of jobs that failed `delivery_limit` times or were rejected.
    pub fn jobs_dlx(&self) -> String {
        self.name("voiceprod.jobs.dlx")
    }
    /// Dead jobs, kept for an operator to look at.
    pub fn jobs_dlq(&self) -> String {
        self.name("synth.jobs.dlq")
    }
    /// Topic exchange of events (`generation.completed`, …).
    pub fn events_exchange(&self) -> String {
        self.name("voiceprod.events")
    }
    /// The dispatcher's queue of events to deliver as webhooks.
    pub fn webhooks_queue(&self) -> String {
        self.name("webhooks.events")
    }
    /// Dead-letter exchange of events that could not be read.
    pub fn events_dlx(&self) -> String {
        self.name("voiceprod.events.dlx")
    }
    /// Dead events, kept for an operator to look at.
    pub fn events_dlq(&self) -> String {
        self.name("webhooks.events.dlq")
    }
    /// Fanout exchange of key invalidations, one exclusive queue per gateway.
    pub fn keys_exchange(&self) -> String {
        self.name("voiceprod.keys")
    }
    /// Direct exchange of streamed audio (`crate::streams`), routing key the
    /// gateway replica's, which binds an exclusive queue of its own to it.
    pub fn streams_exchange(&self) -> String {
        self.name("voiceprod.streams")
    }

    fn queue_args(&self, quorum: bool) -> FieldTable {
        let mut args = FieldTable::default();
        if quorum && self.quorum {
            // Quorum queues replicate every message on a cluster (Raft) and
            // count redeliveries, which is what makes a delivery limit possible.
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        if let Some(ms) = self.queue_expires_ms {
            // Only tests set this: their queues vanish once unused.
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms as i64));
        }
        args
    }

    /// Declares everything; idempotent, so every service calls it on connect.
    pub async fn declare(&self, ch: &Channel) -> Result<(), BrokerError> {
        // Durable exchanges and queues survive a broker restart; together
        // with persistent messages and publisher confirms nothing is lost.
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            self.jobs_exchange().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.jobs_dlx().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.events_exchange().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.keys_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            self.streams_exchange().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;

        let queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(self.jobs_dlq().into(), queue, self.queue_args(true))
            .await?;
        ch.queue_bind(
            self.jobs_dlq().into(),
            self.jobs_dlx().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

        let mut jobs_args = self.queue_args(true);
        // After this many deliveries a job is dead-lettered instead of
        // crashing workers forever (a poison message).
        if self.quorum {
            jobs_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
            );
        }
        jobs_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.jobs_dlx().into()),
        );
        for lane in Lane::ALL {
            ch.queue_declare(self.lane_queue(lane).into(), queue, jobs_args.clone())
                .await?;
            ch.queue_bind(
                self.lane_queue(lane).into(),
                self.jobs_exchange().into(),
                lane.routing_key().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }

        ch.exchange_declare(
            self.events_dlx().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.queue_declare(self.events_dlq().into(), queue, self.queue_args(true))
            .await?;
        ch.queue_bind(
            self.events_dlq().into(),
            self.events_dlx().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut events_args = self.queue_args(true);
        // An event the dispatcher cannot read is dead-lettered, not dropped.
        if self.quorum {
            events_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
            );
        }
        events_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.events_dlx().into()),
        );
        ch.queue_declare(self.webhooks_queue().into(), queue, events_args)
            .await?;
        for key in ["generation.*", "voice.*", "webhook.*"] {
            ch.queue_bind(
                self.webhooks_queue().into(),
                self.events_exchange().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }
}
