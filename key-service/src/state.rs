//! [`State`]: what the key service's handlers share, built once by
//! `crate::startup::Application::build` from `Settings`.

use shared::amqp::Publisher;
use shared::db::Db;
use shared::settings::Settings;

pub struct State {
    pub settings: Settings,
    pub db: Db,
    /// Announces key invalidations on `voiceprod.keys`.
    pub publisher: Publisher,
}
