//! The quickstart block: one request to Weir, shown for curl, Python and Node behind tabs.
//!
//! The tabs are the console's first interactive control, so end-to-end tests use them to
//! prove that the page hydrated.

use leptos::prelude::*;

/// Where the snippets send requests: the default listen address of `weir serve`.
const BASE_URL: &str = "http://127.0.0.1:8080/v1";

/// A client the quickstart shows a snippet for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Curl,
    Python,
    Node,
}

impl Client {
    const ALL: [Client; 3] = [Client::Curl, Client::Python, Client::Node];

    fn label(self) -> &'static str {
        match self {
            Client::Curl => "curl",
            Client::Python => "Python",
            Client::Node => "Node",
        }
    }

    /// Stable id fragment for the tab's DOM id.
    fn slug(self) -> &'static str {
        match self {
            Client::Curl => "curl",
            Client::Python => "python",
            Client::Node => "node",
        }
    }

    fn snippet(self) -> String {
        match self {
            Client::Curl => format!(
                r#"curl {BASE_URL}/chat/completions \
  -H "Authorization: Bearer $WEIR_KEY" \
  -H "Content-Type: application/json" \
  -d '{{"model": "demo/echo", "messages": [{{"role": "user", "content": "Hello, Weir"}}]}}'"#
            ),
            Client::Python => format!(
                r#"# pip install openai
import os
from openai import OpenAI

client = OpenAI(base_url="{BASE_URL}", api_key=os.environ["WEIR_KEY"])
reply = client.chat.completions.create(
    model="demo/echo",
    messages=[{{"role": "user", "content": "Hello, Weir"}}],
)
print(reply.choices[0].message.content)"#
            ),
            Client::Node => format!(
                r#"// npm install openai
import OpenAI from "openai";

const client = new OpenAI({{ baseURL: "{BASE_URL}", apiKey: process.env.WEIR_KEY }});
const reply = await client.chat.completions.create({{
  model: "demo/echo",
  messages: [{{ role: "user", content: "Hello, Weir" }}],
}});
console.log(reply.choices[0].message.content);"#
            ),
        }
    }
}

/// The quickstart card with its client tabs; the anchor `#quickstart` points here.
#[component]
pub fn Quickstart() -> impl IntoView {
    let selected = RwSignal::new(Client::Curl);

    view! {
        <div id="quickstart" class="card quickstart">
            <h2>"Quickstart"</h2>
            <p>
                "Export your key as " <code>"WEIR_KEY"</code> " and send a first request. "
                <code>"demo/echo"</code> " is a demo model for checking the wiring; swap in any "
                "model from the " <a href="/pricing">"catalog"</a> "."
            </p>
            <div class="code-tabs">
                <div class="tab-list" role="tablist" aria-label="Client">
                    {Client::ALL
                        .into_iter()
                        .map(|client| {
                            view! {
                                <button
                                    type="button"
                                    role="tab"
                                    class="tab"
                                    id=format!("quickstart-tab-{}", client.slug())
                                    aria-controls="quickstart-panel"
                                    aria-selected=move || (selected.get() == client).to_string()
                                    on:click=move |_| selected.set(client)
                                >
                                    {client.label()}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
                <div
                    class="tab-panel"
                    role="tabpanel"
                    id="quickstart-panel"
                    aria-labelledby=move || format!("quickstart-tab-{}", selected.get().slug())
                >
                    <pre>
                        <code>{move || selected.get().snippet()}</code>
                    </pre>
                </div>
            </div>
            <p class="note">
                "Any OpenAI-compatible client works the same way; replace the host with the "
                "address your Weir listens on. Anthropic-format clients (Anthropic SDKs, Claude "
                "Code) are next: Weir already translates to Anthropic upstreams, and the "
                <code>"/v1/messages"</code>
                " surface is on the way."
            </p>
        </div>
    }
}
