//! The OpenAPI 3 document, made from the route table at start: every route the router serves is
//! in it, with its access level, and nothing else is.

use super::gate::Access;
use super::routes::Operation;
use serde_json::{json, Map, Value};

pub const PATH: &str = "/api/openapi.json";

pub fn document(operations: &[Operation]) -> Value {
    let mut paths = Map::new();
    for op in operations {
        let parameters: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut responses = Map::new();
        responses.insert("200".into(), json!({ "description": "Success (201 for a creation, 204 when there is no body)" }));
        responses.insert("default".into(), json!({ "description": "An error: `{error, detail}` naming the field at fault", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }));
        let mut operation = json!({
            "tags": [op.tag],
            "summary": op.summary,
            "operationId": format!("{} {}", op.method, op.path),
            "parameters": parameters,
            "responses": responses,
            "x-gantry-access": op.access,
        });
        if op.access != Access::Public {
            operation["security"] = json!([{ "bearer": [] }, { "session": [] }]);
        }
        if matches!(op.method.as_str(), "POST" | "PUT" | "PATCH") {
            operation["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        let entry = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        entry[op.method.as_str().to_lowercase()] = operation;
    }
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
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": { "error": { "type": "string" }, "detail": {} },
                },
            },
        },
    })
}
