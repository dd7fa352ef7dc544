//! `admin_import_catalog`: a price list in the schema of `catalog/models.json`, previewed
//! (nothing written) or applied; operator edits are kept either way. The same calls as
//! `weir catalog import FILE [--apply]`.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportChangeView {
    pub kind: String,
    pub target: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportView {
    pub applied: bool,
    pub writes: usize,
    pub unchanged: usize,
    pub changes: Vec<ImportChangeView>,
}

/// The largest price list accepted (the shipped one is ~100 KB).
pub const MAX_IMPORT_BYTES: usize = 4 * 1024 * 1024;

#[server(endpoint = "admin/import_catalog")]
pub async fn admin_import_catalog(
    file: String,
    apply: Option<String>,
    #[server(default)] csrf: String,
) -> Result<ImportView, AppError> {
    use crate::ssr;
    use weir_core::catalog::import;
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        if file.trim().is_empty() || file.len() > MAX_IMPORT_BYTES {
            return Err(AppError::field(
                "file",
                "Paste a price list in the models.json schema (up to 4 MB).",
            ));
        }
        let db = &caller.state.db;
        let applied = apply.is_some_and(|a| a == "true" || a == "on");
        let plan = if applied {
            let actor = format!("user:{}", caller.user.id);
            import::apply(db, &actor, &file).await
        } else {
            import::preview(db, &file).await
        }
        .map_err(|e| ssr::catalog_error("importing a price list", e))?;
        Ok(ImportView {
            applied,
            writes: plan.writes(),
            unchanged: plan.unchanged,
            changes: plan
                .changes
                .into_iter()
                .map(|c| ImportChangeView {
                    kind: c.kind.as_str().to_owned(),
                    target: c.target,
                    detail: c.detail,
                })
                .collect(),
        })
    })
    .await
}
