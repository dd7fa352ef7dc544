//! Copy-ready snippets for calling Weir, filled in with this server's base URL and a key:
//! curl, the OpenAI SDKs, the Anthropic SDK, Claude Code, Codex CLI and pi. The home page
//! shows the first three behind tabs (its first interactive control, which end-to-end tests
//! use to prove hydration); `/quickstart` shows them all.

use leptos::prelude::*;

/// One snippet: a stable slug, a label, the code.
pub struct Snippet {
    pub slug: &'static str,
    pub label: &'static str,
    pub note: &'static str,
    pub code: String,
}

/// Every snippet for `base` (no trailing slash, no `/v1`) and `key` (a key, or an expression
/// like `$WEIR_KEY`).
pub fn snippets(base: &str, key: &str) -> Vec<Snippet> {
    let (py_key, node_key) = if key.starts_with('$') {
        (
            "os.environ[\"WEIR_KEY\"]".to_owned(),
            "process.env.WEIR_KEY".to_owned(),
        )
    } else {
        (format!("\"{key}\""), format!("\"{key}\""))
    };
    vec![
        Snippet {
            slug: "curl",
            label: "curl",
            note: "",
            code: format!(
                r#"curl {base}/v1/chat/completions \
  -H "Authorization: Bearer {key}" \
  -H "Content-Type: application/json" \
  -d '{{"model": "demo/echo", "messages": [{{"role": "user", "content": "Hello, Weir"}}]}}'"#
            ),
        },
        Snippet {
            slug: "python",
            label: "Python",
            note: "",
            code: format!(
                r#"# pip install openai
import os
from openai import OpenAI

client = OpenAI(base_url="{base}/v1", api_key={py_key})
reply = client.chat.completions.create(
    model="demo/echo",
    messages=[{{"role": "user", "content": "Hello, Weir"}}],
)
print(reply.choices[0].message.content)"#
            ),
        },
        Snippet {
            slug: "node",
            label: "Node",
            note: "",
            code: format!(
                r#"// npm install openai
import OpenAI from "openai";

const client = new OpenAI({{ baseURL: "{base}/v1", apiKey: {node_key} }});
const reply = await client.chat.completions.create({{
  model: "demo/echo",
  messages: [{{ role: "user", content: "Hello, Weir" }}],
}});
console.log(reply.choices[0].message.content);"#
            ),
        },
        Snippet {
            slug: "anthropic",
            label: "Anthropic SDK",
            note: "Weir answers the Messages API at /v1/messages; any catalog model works, translated when its upstream is not Anthropic.",
            code: format!(
                r#"# pip install anthropic
import os
from anthropic import Anthropic

client = Anthropic(base_url="{base}", api_key={py_key})
msg = client.messages.create(
    model="demo/claude-echo",
    max_tokens=256,
    messages=[{{"role": "user", "content": "Hello, Weir"}}],
)
print(msg.content[0].text)"#
            ),
        },
        Snippet {
            slug: "claude-code",
            label: "Claude Code",
            note: "Claude Code sends the key as a bearer token; ANTHROPIC_MODEL may name any catalog model.",
            code: format!(
                r#"export ANTHROPIC_BASE_URL="{base}"
export ANTHROPIC_AUTH_TOKEN="{key}"
export ANTHROPIC_MODEL="anthropic/claude-sonnet-4-5"
export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
claude"#
            ),
        },
        Snippet {
            slug: "codex",
            label: "Codex CLI",
            note: "In ~/.codex/config.toml; Codex speaks the Responses API, which Weir answers at /v1/responses.",
            code: format!(
                r#"model = "openai/gpt-5.4-mini"
model_provider = "weir"

[model_providers.weir]
name = "Weir"
base_url = "{base}/v1"
env_key = "WEIR_KEY"
wire_api = "responses""#
            ),
        },
        Snippet {
            slug: "pi",
            label: "pi",
            note: "A provider entry for pi's ~/.pi/agent/models.json; the full model list is at /api/public/models.",
            code: format!(
                r#"{{
  "providers": {{
    "weir": {{
      "baseUrl": "{base}/v1",
      "api": "openai-completions",
      "apiKey": "WEIR_KEY",
      "models": [
        {{ "id": "demo/echo", "name": "Weir demo echo", "contextWindow": 8192, "maxTokens": 1024 }}
      ]
    }}
  }}
}}"#
            ),
        },
    ]
}

/// The quickstart card with its client tabs; the anchor `#quickstart` points here.
#[component]
pub fn Quickstart() -> impl IntoView {
    let base = crate::components::viewer().base_url;
    let all = snippets(&base, "$WEIR_KEY");
    let tabs: Vec<(&'static str, &'static str, String)> = all
        .into_iter()
        .take(3)
        .map(|s| (s.slug, s.label, s.code))
        .collect();
    let selected = RwSignal::new(0usize);
    let codes: Vec<String> = tabs.iter().map(|t| t.2.clone()).collect();
    let slugs: Vec<&'static str> = tabs.iter().map(|t| t.0).collect();
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
                    {tabs
                        .iter()
                        .enumerate()
                        .map(|(i, (slug, label, _))| {
                            view! {
                                <button
                                    type="button"
                                    role="tab"
                                    class="tab"
                                    id=format!("quickstart-tab-{slug}")
                                    aria-controls="quickstart-panel"
                                    aria-selected=move || (selected.get() == i).to_string()
                                    on:click=move |_| selected.set(i)
                                >
                                    {*label}
                                </button>
                            }
                        })
                        .collect_view()}
                </div>
                <div
                    class="tab-panel"
                    role="tabpanel"
                    id="quickstart-panel"
                    aria-labelledby=move || format!("quickstart-tab-{}", slugs.get(selected.get()).copied().unwrap_or("curl"))
                >
                    <pre>
                        <code>{move || codes.get(selected.get()).cloned().unwrap_or_default()}</code>
                    </pre>
                </div>
            </div>
            <p class="note">
                "Any OpenAI-compatible client works the same way. Sign up to get a key and the "
                "snippets for the Anthropic SDK, Claude Code, Codex CLI and pi."
            </p>
        </div>
    }
}
