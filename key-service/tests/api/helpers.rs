use diesel::{Connection, PgConnection};
use secrecy::ExposeSecret;

use shared::settings::Settings;

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub client: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    let settings = testkit::test_settings().unwrap();
    let app = key_service::Application::build(settings.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        settings,
        client: reqwest::Client::new(),
    }
}

pub fn connect(settings: &Settings) -> PgConnection {
    PgConnection::establish(settings.database.url.expose_secret()).unwrap()
}
