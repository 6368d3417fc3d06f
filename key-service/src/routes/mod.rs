//! Routes of the key service (internal network only).

pub mod verify;
