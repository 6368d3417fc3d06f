use diesel::prelude::*;

use key_service::bootstrap::{BootstrapError, bootstrap};
use shared::schema::{api_keys, workspaces};

use crate::helpers::*;

#[test]
fn bootstrap_creates_a_workspace_on_the_plan_and_a_key_with_every_scope() {
    let settings = testkit::test_settings().unwrap();
    let mut conn = connect(&settings);

    let out = bootstrap(&mut conn, &settings, "dev", "scale").unwrap();

    assert!(shared::api_key::is_well_formed(&out.api_key));
    let (plan, included, used): (String, i64, i64) = workspaces::table
        .select((
            workspaces::plan,
            workspaces::credits_included,
            workspaces::credits_used,
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!((plan.as_str(), included, used), ("scale", 1000, 0));
    let (hash, prefix, scopes): (Vec<u8>, String, Vec<String>) = api_keys::table
        .select((api_keys::secret_sha256, api_keys::prefix, api_keys::scopes))
        .first(&mut conn)
        .unwrap();
    assert_eq!(hash, shared::api_key::hash(&out.api_key).to_vec());
    assert!(out.api_key.starts_with(&prefix) && prefix.len() < 16);
    assert_eq!(scopes, shared::api_key::SCOPES.to_vec());
    let json = serde_json::to_value(&out).unwrap();
    assert!(json["workspaceId"].as_str().unwrap().starts_with("ws_"));
    assert_eq!(json["apiKey"], out.api_key);
}

#[test]
fn bootstrap_refuses_an_existing_workspace_and_an_unknown_plan_and_writes_nothing() {
    let settings = testkit::test_settings().unwrap();
    let mut conn = connect(&settings);
    bootstrap(&mut conn, &settings, "dev", "scale").unwrap();

    let again = bootstrap(&mut conn, &settings, "dev", "scale");
    let unknown = bootstrap(&mut conn, &settings, "other", "platinum");

    assert!(matches!(again, Err(BootstrapError::WorkspaceExists(_))));
    assert!(matches!(unknown, Err(BootstrapError::UnknownPlan(..))));
    let keys: i64 = api_keys::table.count().get_result(&mut conn).unwrap();
    let spaces: i64 = workspaces::table.count().get_result(&mut conn).unwrap();
    assert_eq!((keys, spaces), (1, 1));
}
