//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: kubectl's human-readable output.

use api::ResourceInfo;
use axum::http::HeaderMap;
use serde_json::Value;

pub struct TableRequest {
    include_object: String,
}

/// Whether the client asked for a Table (before plain JSON).
pub fn wants_table(headers: &HeaderMap) -> Option<TableRequest> {
    let accept = headers.get(axum::http::header::ACCEPT)?.to_str().ok()?;
    let first = accept.split(',').next()?;
    let params: Vec<&str> = first.split(';').map(str::trim).collect();
    let as_table = params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io");
    as_table.then(|| TableRequest {
        include_object: "Metadata".into(),
    })
}

impl TableRequest {
    pub fn with_include(mut self, include: Option<&str>) -> Self {
        if let Some(i) = include {
            self.include_object = i.to_string();
        }
        self
    }

    pub fn list(
        &self,
        info: &ResourceInfo,
        items: &[Value],
        rev: i64,
        continue_: Option<&str>,
    ) -> Value {
        api::table::table(
            info,
            items,
            &rev.to_string(),
            continue_,
            &self.include_object,
            chrono::Utc::now(),
        )
    }

    pub fn one(&self, info: &ResourceInfo, obj: &Value) -> Value {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        api::table::table(
            info,
            std::slice::from_ref(obj),
            rv,
            None,
            &self.include_object,
            chrono::Utc::now(),
        )
    }
}
