//! What the API edits on disk: seed 004's numbered command files, and the rules and settings in
//! `gantry.toml`.

use crate::http::error::{from_value, ApiResult, Body, PathParam};
use crate::http::gate::Access::{Admin, Operate, Read};
use crate::command_files::Entry;
use crate::http::routes::{AnyOf, Routes};
use crate::model::RunMode;
use crate::service::{CommandConfig, CommandFileView, Content, Service, SettingsChange};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

type Shared = State<Arc<Service>>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "native")
        .get("/api/v1/command-files", Read, "The numbered command files of both modes", command_files)
        .answers::<CommandFiles>(200)
        .post("/api/v1/command-files/{mode}", Operate, "A new command file after the last (`{queues}` or `{text}`, or empty)", create_command_file)
        .path::<RunMode>()
        .optional_body::<AnyOf<TextBody, CommandConfig>>()
        .answers::<CommandFileView>(201)
        .fails(&[409, 503])
        .get("/api/v1/command-files/{mode}/{index}", Read, "A command file: its text, and its queues and processes", command_file)
        .path::<(RunMode, u32)>()
        .answers::<CommandFileView>(200)
        .fails(&[404, 503])
        .put("/api/v1/command-files/{mode}/{index}", Operate, "Replace a command file with `{queues}` (rendered by the parser plugin) or `{text}` (kept if it parses)", put_command_file)
        .path::<(RunMode, u32)>()
        .body::<AnyOf<TextBody, CommandConfig>>()
        .answers::<CommandFileView>(200)
        .fails(&[404, 503])
        .delete("/api/v1/command-files/{mode}/{index}", Operate, "Delete a command file (its backup stays)", delete_command_file)
        .path::<(RunMode, u32)>()
        .answers_raw(204, None)
        .fails(&[404])
        .post("/api/v1/command-files/{mode}/{index}/reset", Operate, "Put a command file back as it was before its last change", reset_command_file)
        .path::<(RunMode, u32)>()
        .answers::<CommandFileView>(200)
        .fails(&[404, 409, 503])
        .get("/api/v1/rules", Read, "The scheduling rules", rules)
        .answers::<Map<String, Value>>(200)
        .put("/api/v1/rules", Admin, "Change rules: written keeping the file's comments, applied to the next scheduling pass", put_rules)
        .body::<Map<String, Value>>()
        .answers::<Map<String, Value>>(200)
        .get("/api/v1/settings", Read, "Settings, each with requires_restart, warning and description", settings)
        .answers::<Map<String, Value>>(200)
        .put("/api/v1/settings", Admin, "Change settings; the policy applies at once, the rest at the next start", put_settings)
        .body::<Map<String, Value>>()
        .answers::<SettingsChange>(200)
        .with_state(service)
}

#[derive(Serialize, JsonSchema)]
struct CommandFiles {
    single: Vec<Entry>,
    multi: Vec<Entry>,
}

async fn command_files(State(service): Shared) -> ApiResult<Json<CommandFiles>> {
    let (single, multi) = service.all_command_file_entries().await?;
    Ok(Json(CommandFiles { single, multi }))
}

async fn command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<Json<CommandFileView>> {
    Ok(Json(service.command_file(mode, index).await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

/// A command file's new content: `{text}`, or the queues themselves.
fn content(body: Value) -> ApiResult<Content> {
    match body.get("text") {
        Some(_) => Ok(Content::Text(from_value::<TextBody>(body)?.text)),
        None => Ok(Content::Config(from_value::<CommandConfig>(body)?)),
    }
}

async fn put_command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>, Body(body): Body<Value>) -> ApiResult<Json<CommandFileView>> {
    Ok(Json(service.put_command_file(mode, index, content(body)?).await?))
}

async fn create_command_file(State(service): Shared, PathParam(mode): PathParam<RunMode>, body: Option<Body<Value>>) -> ApiResult<(StatusCode, Json<CommandFileView>)> {
    let content = match body {
        Some(Body(body)) => content(body)?,
        None => Content::Empty,
    };
    let (_, view) = service.new_command_file(mode, content).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn delete_command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<StatusCode> {
    service.delete_command_file(mode, index).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<Json<CommandFileView>> {
    Ok(Json(service.reset_command_file(mode, index).await?))
}

pub async fn rules(State(service): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(service.rules().await?))
}

async fn put_rules(State(service): Shared, Body(changes): Body<Map<String, Value>>) -> ApiResult<Json<Value>> {
    Ok(Json(service.put_rules(changes).await?))
}

pub async fn settings(State(service): Shared) -> ApiResult<Json<Value>> {
    Ok(Json(service.settings().await?))
}

pub async fn put_settings(State(service): Shared, Body(changes): Body<Map<String, Value>>) -> ApiResult<Json<SettingsChange>> {
    Ok(Json(service.put_settings(changes).await?))
}
