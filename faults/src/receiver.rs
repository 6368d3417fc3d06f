//! A customer's webhook endpoint on a fixed port that a case can take down
//! (the port then refuses connections) and bring back. It answers 204 and
//! records every delivery: its `webhook-id`, event type and generation id,
//! so a case counts deliveries per generation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    pub event: String,
    /// `data.id` (the generation).
    pub generation_id: String,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

pub struct Receiver {
    pub port: u16,
    log: Log,
    handle: Option<ServerHandle>,
}

async fn record(req: HttpRequest, body: web::Bytes, log: web::Data<Log>) -> HttpResponse {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    log.lock().unwrap().push(Delivery {
        webhook_id: header("webhook-id"),
        event: json["event"].as_str().unwrap_or("").to_owned(),
        generation_id: json["data"]["id"].as_str().unwrap_or("").to_owned(),
    });
    HttpResponse::NoContent().finish()
}

impl Receiver {
    /// Listening on 127.0.0.1:`port`.
    pub async fn start(port: u16) -> Self {
        let mut r = Self {
            port,
            log: Arc::default(),
            handle: None,
        };
        r.up();
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Starts listening again (keeps what was recorded).
    pub fn up(&mut self) {
        assert!(self.handle.is_none(), "receiver already up");
        let log = web::Data::new(self.log.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(log.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", self.port))
        .unwrap()
        .run();
        self.handle = Some(server.handle());
        tokio::spawn(server);
    }

    /// Stops listening at once; connections in progress are dropped.
    pub async fn down(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop(false).await;
        }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }

    /// Deliveries per generation id, and the distinct `webhook-id`s of each.
    pub fn per_generation(&self) -> BTreeMap<String, (usize, Vec<String>)> {
        let mut out: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
        for d in self.deliveries() {
            let entry = out.entry(d.generation_id).or_default();
            entry.0 += 1;
            if !entry.1.contains(&d.webhook_id) {
                entry.1.push(d.webhook_id);
            }
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            drop(h.stop(false));
        }
    }
}
