//! The OpenAPI 3 document, made from the route table at start: every route the router serves is
//! in it, with its access level, parameters, body, answers and failures, and nothing else is.
//! Schemas are generated from the types the handlers read and answer.

use super::gate::Access;
use super::routes::{Answer, Operation, Payload, SchemaFn};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

pub const PATH: &str = "/api/openapi.json";

/// Failures any route can answer whatever its own logic: the `Host` check (421), the request
/// timeout (408) and an internal error (500, answered with a reference to the daemon's log).
const EVERY_ROUTE: [u16; 3] = [408, 421, 500];

pub fn document(operations: &[Operation]) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    for op in operations {
        let operation = describe(op, &mut generator);
        let entry = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        entry[op.method.as_str().to_lowercase()] = operation;
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every failure: `error` a short code, `detail` what was wrong, naming the field, file or line at fault",
            "required": ["error", "detail"],
            "properties": { "error": { "type": "string" }, "detail": {} },
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "gantry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "gantry's own API (/api/v1), and the endpoints of the systems it replaces (seeds 000–004) over the same services.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT or an API token gty_…" },
                "session": { "type": "apiKey", "in": "cookie", "name": super::gate::COOKIE },
            },
            "schemas": schemas,
        },
    })
}

fn describe(op: &Operation, generator: &mut SchemaGenerator) -> Value {
    let mut parameters = path_parameters(op);
    if let Some(query) = op.query {
        parameters.extend(query_parameters(inline(query)));
    }
    let mut failures: Vec<u16> = EVERY_ROUTE.to_vec();
    if op.access != Access::Public {
        failures.extend([401, 403]);
    }
    if !parameters.is_empty() {
        failures.push(400);
    }
    if let Some(Payload { media, .. }) = &op.request {
        failures.extend(if *media == "application/json" { [400, 413, 415, 422].as_slice() } else { [413, 422].as_slice() });
    }
    failures.extend(&op.failures);
    failures.sort_unstable();
    failures.dedup();

    let mut responses = Map::new();
    for Answer { status, media, schema, links } in &op.answers {
        // Answers of one status in several media types (JSON, or an event stream when asked)
        // are one response with several contents.
        let response = responses.entry(status.to_string()).or_insert_with(|| json!({ "description": reason(*status) }));
        if !links.is_empty() {
            let links: Map<String, Value> = links
                .iter()
                .map(|link| {
                    let id = operation_id(&link.method, link.path);
                    (id.replace(['/', '{', '}', ' '], "_"), json!({ "operationId": id, "parameters": { link.parameter: link.value } }))
                })
                .collect();
            response["links"] = Value::Object(links);
        }
        if let Some(media) = media {
            let schema = match schema {
                Some(schema) => transformed(schema(generator), generator),
                // Each event of a stream carries its own kind of data (a log chunk, then a job id).
                None if *media == "text/event-stream" => json!({}),
                None => json!({ "type": "string" }),
            };
            response["content"][*media] = json!({ "schema": schema });
        }
    }
    for status in failures {
        responses.insert(
            status.to_string(),
            json!({ "description": reason(status), "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    let mut operation = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": operation_id(&op.method, op.path),
        "parameters": parameters,
        "responses": responses,
        "x-gantry-access": op.access,
    });
    if op.access != Access::Public {
        operation["security"] = json!([{ "bearer": [] }, { "session": [] }]);
    }
    if let Some(Payload { media, schema, required }) = &op.request {
        let schema = transformed(schema(generator), generator);
        operation["requestBody"] = json!({ "required": required, "content": { *media: { "schema": schema } } });
    }
    operation
}

/// A schema written out in place, for parameters (which can't refer to a schema's fields).
fn inline(schema: SchemaFn) -> Value {
    let mut settings = SchemaSettings::openapi3();
    settings.inline_subschemas = true;
    let mut generator = settings.into_generator();
    let schema = schema(&mut generator);
    transformed(schema, &mut generator)
}

/// A schema made outside `take_definitions` gets the OpenAPI 3.0 transforms (nullable for
/// `Option`, no `const`) that the named ones get there.
fn transformed(mut schema: Schema, generator: &mut SchemaGenerator) -> Value {
    for transform in generator.transforms_mut() {
        transform.transform(&mut schema);
    }
    schema.to_value()
}

/// The path's `{name}` segments, typed by the handler's path type when the route gives one (a
/// tuple types them in order), else strings.
fn path_parameters(op: &Operation) -> Vec<Value> {
    let names: Vec<&str> = op.path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect();
    let typed = op.path_params.map(inline);
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let schema = match &typed {
                Some(Value::Object(o)) if names.len() > 1 => o.get("items").and_then(|items| items.get(i)).cloned().unwrap_or_else(|| json!({ "type": "string" })),
                Some(schema) => schema.clone(),
                None => json!({ "type": "string" }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect()
}

/// A query type's fields as query parameters.
fn query_parameters(value: Value) -> Vec<Value> {
    let required: Vec<&str> = value["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(properties) = value["properties"].as_object() else { return Vec::new() };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            if let Some(o) = schema.as_object_mut() {
                o.remove("nullable");
            }
            let description = schema.get("description").cloned();
            let mut parameter = json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": schema });
            if let Some(description) = description {
                parameter["description"] = description;
            }
            parameter
        })
        .collect()
}

fn operation_id(method: &http::Method, path: &str) -> String {
    format!("{method} {path}")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "Success",
        201 => "Created",
        202 => "Accepted",
        204 => "Done; no body",
        400 => "A malformed parameter or body",
        401 => "No credential, or one that is not valid",
        403 => "The caller's role or rights do not reach this",
        404 => "Not found",
        408 => "The request took too long",
        409 => "In a state that does not allow this",
        413 => "The body or the file is larger than allowed",
        415 => "The body is not of the media type this route reads",
        421 => "The Host is not one of this server's names",
        422 => "A field is invalid (the error names it)",
        429 => "Too many attempts; try again later",
        500 => "Internal error: the answer refers to the daemon's log",
        503 => "A part it needs is not available (a plugin, the GPUs)",
        _ => "See the error",
    }
}
