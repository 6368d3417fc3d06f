//! The diesel schema of `migrations/`, one `table!` per table of
//! docs/architecture.md. Kept by hand in the shape `diesel print-schema` writes;
//! `tests/schema.rs` checks it against a migrated database.

diesel::table! {
    workspaces (id) {
        id -> Uuid,
        name -> Text,
        plan -> Text,
        credits_included -> Int8,
        credits_used -> Int8,
        period_start -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        name -> Text,
        secret_sha256 -> Bytea,
        prefix -> Text,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        rotated_from -> Nullable<Uuid>,
        credit_limit -> Nullable<Int8>,
    }
}

diesel::table! {
    generations (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        api_key_id -> Nullable<Uuid>,
        text -> Text,
        text_type -> Text,
        voice_id -> Text,
        format -> Text,
        sample_rate -> Nullable<Int4>,
        speed -> Float4,
        status -> Text,
        credits -> Int8,
        characters -> Int8,
        duration_ms -> Nullable<Int8>,
        storage_key -> Nullable<Text>,
        error -> Nullable<Jsonb>,
        metadata -> Nullable<Jsonb>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Bytea>,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        event_published_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        traceparent -> Nullable<Text>,
        claimed_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        redrives -> Int4,
        redriven_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    generation_parts (generation_id, part) {
        generation_id -> Uuid,
        part -> Int4,
        claimed_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        attempts -> Int4,
        done_at -> Nullable<Timestamptz>,
        error -> Nullable<Jsonb>,
    }
}

diesel::table! {
    job_queue_progress (queue) {
        queue -> Text,
        consumed_through -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (workspace_id, idempotency_key) {
        workspace_id -> Uuid,
        idempotency_key -> Text,
        request_hash -> Bytea,
        route -> Text,
        owner -> Uuid,
        response_status -> Nullable<Int2>,
        response_headers -> Nullable<Jsonb>,
        response_body -> Nullable<Bytea>,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        api_key_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    usage_events (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        api_key_id -> Nullable<Uuid>,
        generation_id -> Nullable<Uuid>,
        kind -> Text,
        credits -> Int8,
        characters -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    voices (id) {
        id -> Text,
        workspace_id -> Uuid,
        name -> Text,
        language -> Text,
        gender -> Nullable<Text>,
        description -> Nullable<Text>,
        status -> Text,
        params -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    voice_clones (voice_id) {
        voice_id -> Text,
        samples_key -> Text,
        samples -> Int4,
        attempts -> Int4,
        claimed_until -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        url -> Text,
        description -> Nullable<Text>,
        events -> Array<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_success_at -> Nullable<Timestamptz>,
        failing_since -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        event_id -> Uuid,
        endpoint_id -> Uuid,
        workspace_id -> Uuid,
        event_type -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_attempt_at -> Nullable<Timestamptz>,
        last_status_code -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        last_response_body -> Nullable<Text>,
        last_duration_ms -> Nullable<Int8>,
        created_at -> Timestamptz,
        leased_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Uuid,
        delivery_id -> Uuid,
        workspace_id -> Uuid,
        attempt -> Int4,
        status_code -> Nullable<Int4>,
        error -> Nullable<Text>,
        response_body -> Nullable<Text>,
        duration_ms -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> workspaces (workspace_id));
diesel::joinable!(generations -> workspaces (workspace_id));
diesel::joinable!(generation_parts -> generations (generation_id));
diesel::joinable!(idempotency_keys -> api_keys (api_key_id));
diesel::joinable!(idempotency_keys -> workspaces (workspace_id));
diesel::joinable!(usage_events -> workspaces (workspace_id));
diesel::joinable!(voices -> workspaces (workspace_id));
diesel::joinable!(voice_clones -> voices (voice_id));
diesel::joinable!(webhook_endpoints -> workspaces (workspace_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    generation_parts,
    job_queue_progress,
    workspaces,
    api_keys,
    generations,
    idempotency_keys,
    usage_events,
    voices,
    voice_clones,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
);
