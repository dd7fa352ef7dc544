//! `/admin/audit`: every catalog change, newest first: who, what, when.

use leptos::prelude::*;
use leptos_meta::Title;

use super::OperatorOnly;
use crate::{
    components::{format, LoadError, PageHeader},
    server_fns::admin::admin_list_audit,
};

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    view! { <OperatorOnly><AdminAudit/></OperatorOnly> }
}

#[component]
fn AdminAudit() -> impl IntoView {
    let data = Resource::new(|| (), |_| admin_list_audit());
    view! {
        <Title text="Audit log · Admin · Weir"/>
        <section class="container section">
            <PageHeader title="Audit log" lead="Changes to channels, models, codenames, tariffs and imports, newest first (the last 200)."/>
            <p><a href="/admin">"← Admin"</a></p>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <LoadError error=e/> }.into_any(),
                        Ok(rows) => view! {
                            <div class="table-wrap">
                                <table class="audit">
                                    <thead><tr>
                                        <th scope="col">"When (UTC)"</th>
                                        <th scope="col">"Who"</th>
                                        <th scope="col">"Action"</th>
                                        <th scope="col">"Target"</th>
                                        <th scope="col">"Details"</th>
                                    </tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|a| view! {
                                            <tr>
                                                <td>{format::time(a.created_at)}</td>
                                                <td>{a.actor}</td>
                                                <td>{a.action}</td>
                                                <td>{a.target}</td>
                                                <td>{a.detail}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
