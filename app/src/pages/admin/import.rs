//! `/admin/import`: paste a price list in the schema of `catalog/models.json`, see what would
//! change, then apply it. Anything an operator edited is kept (and listed as kept).

use leptos::prelude::*;
use leptos_meta::Title;

use super::OperatorOnly;
use crate::{
    components::{
        form::{action_error, CsrfField, FieldError, FormError},
        PageHeader,
    },
    server_fns::admin::AdminImportCatalog,
};

#[component]
pub fn AdminImportPage() -> impl IntoView {
    view! { <OperatorOnly><AdminImport/></OperatorOnly> }
}

#[component]
fn AdminImport() -> impl IntoView {
    let run = ServerAction::<AdminImportCatalog>::new();
    let err = action_error(run.value());
    let result = move || {
        run.value().get().and_then(|r| r.ok()).map(|p| {
            let head = if p.applied {
                format!("Applied: {} change(s); {} model(s) already matched.", p.writes, p.unchanged)
            } else {
                format!("Preview: {} change(s) would be written; {} model(s) already match. Nothing was written.", p.writes, p.unchanged)
            };
            view! {
                <p class="notice import-summary" role="status">{head}</p>
                <div class="table-wrap">
                    <table class="import">
                        <thead><tr><th scope="col">"Change"</th><th scope="col">"Target"</th><th scope="col">"Details"</th></tr></thead>
                        <tbody>
                            {p.changes.into_iter().map(|c| view! {
                                <tr><td>{c.kind}</td><td>{c.target}</td><td>{c.detail}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }
        })
    };
    view! {
        <Title text="Import prices · Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Import a price list" lead="The schema of core/catalog/models.json. New providers, models and codenames are added; changed prices become a new version in force now (keeping their markup). Models and prices you edited are never overwritten."/>
            <p><a href="/admin">"← Admin"</a></p>
            <div class="panel">
                <ActionForm action=run>
                    <CsrfField/>
                    <div class="field"><label for="imp-file">"Price list (JSON)"</label>
                        <textarea id="imp-file" name="file" rows="12" required></textarea>
                        <FieldError err name="file"/></div>
                    <div class="field checkbox"><label><input type="checkbox" name="apply" value="true" id="imp-apply"/>" Apply (unchecked: preview only)"</label></div>
                    <button type="submit" class="button primary">"Preview or apply"</button>
                </ActionForm>
                <FormError err/>
            </div>
            {result}
        </section>
    }
}
