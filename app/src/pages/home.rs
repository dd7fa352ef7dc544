//! `/`: what Weir is, how it works, and the quickstart.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_location};

use crate::quickstart::Quickstart;

/// One thing Weir does for a team, shown as a card.
struct Feature {
    title: &'static str,
    body: &'static str,
}

const FEATURES: [Feature; 4] = [
    Feature {
        title: "Any provider, one endpoint",
        body: "OpenAI, Anthropic, Gemini, Cohere, or any OpenAI-compatible host such as Groq, \
               Together or a local Ollama or vLLM.",
    },
    Feature {
        title: "Formats translated",
        body: "Send OpenAI Chat, OpenAI Responses or Anthropic Messages: Weir speaks the \
               upstream's wire format and streams the answer back in yours, so Claude Code and \
               Codex work unchanged.",
    },
    Feature {
        title: "Retries across healthy channels",
        body: "If an upstream fails before anything reaches your client, Weir tries the next \
               healthy channel that serves the same model.",
    },
    Feature {
        title: "Metered, prepaid billing",
        body: "Every token is counted and charged at the model's price plus your markup, \
               against a balance the team tops up in advance.",
    },
];

/// One step of getting started.
struct Step {
    title: &'static str,
    body: &'static str,
}

const STEPS: [Step; 3] = [
    Step {
        title: "Top up",
        body: "Your team adds prepaid credit. Requests stop at zero, never at a surprise invoice.",
    },
    Step {
        title: "Create a key",
        body: "One API key per environment: dev, staging and prod, each revocable on its own.",
    },
    Step {
        title: "Point your client",
        body: "Set the base URL of any OpenAI- or Anthropic-compatible SDK or tool to Weir.",
    },
];

/// Upstreams a request can be routed to, shown at the end of the request path.
const UPSTREAMS: [&str; 7] = [
    "OpenAI",
    "Anthropic",
    "Gemini",
    "Cohere",
    "Ollama",
    "vLLM",
    "Any OpenAI-compatible host",
];

/// The hero's illustration: one request from a client, through Weir, to an upstream.
#[component]
fn RequestPath() -> impl IntoView {
    view! {
        <figure class="request-path" aria-label="How a request flows through Weir">
            <div class="path-node">
                <span class="path-label">"Your client"</span>
                <span class="path-detail">"OpenAI or Anthropic SDK, curl, agent CLIs"</span>
            </div>
            <div class="path-arrow" aria-hidden="true"></div>
            <div class="path-node path-weir">
                <span class="path-label">
                    <img src="/favicon.svg" alt="" width="20" height="20"/>
                    "Weir"
                </span>
                <ul class="path-steps">
                    <li>"Check key and balance"</li>
                    <li>"Route to a healthy channel"</li>
                    <li>"Translate the format"</li>
                    <li>"Meter tokens, bill with markup"</li>
                </ul>
            </div>
            <div class="path-arrow" aria-hidden="true"></div>
            <div class="path-node">
                <span class="path-label">"Upstream"</span>
                <ul class="chips">
                    {UPSTREAMS
                        .iter()
                        .map(|name| view! { <li class="chip">{*name}</li> })
                        .collect_view()}
                </ul>
            </div>
        </figure>
    }
}

#[component]
pub fn HomePage() -> impl IntoView {
    // The router scrolls to `#quickstart` before this page exists when the link is followed
    // from another page, so scroll again once the page is mounted. Effects only run in the
    // browser.
    let location = use_location();
    Effect::new(move |_| {
        let id = location.hash.get().trim_start_matches('#').to_owned();
        request_animation_frame(move || scroll_to_element(&id));
    });

    view! {
        <Title text="Weir · LLM API gateway with prepaid billing"/>
        <section class="hero">
            <div class="container hero-grid">
                <div class="hero-copy">
                    <p class="eyebrow">"Self-hostable LLM API gateway"</p>
                    <h1>"One API for every model, billed from a prepaid balance."</h1>
                    <p class="lead">
                        "Weir is a gateway your teams put between their code and the model providers. "
                        "A team tops up a prepaid balance, creates API keys per environment, and points "
                        "any OpenAI- or Anthropic-compatible client at Weir's base URL. Weir routes each "
                        "request to OpenAI, Anthropic, Gemini, Cohere or any OpenAI-compatible host, "
                        "including a local Ollama or vLLM; it translates between the formats, retries "
                        "across healthy channels, meters the tokens, and bills them at the model's "
                        "price plus markup."
                    </p>
                    <div class="hero-actions">
                        <a class="button primary" href="#quickstart">
                            "Quickstart"
                        </a>
                        <A href="/pricing" {..} class="button secondary">
                            "See pricing"
                        </A>
                    </div>
                </div>
                <RequestPath/>
            </div>
        </section>

        <section class="container section" aria-labelledby="features-title">
            <h2 id="features-title" class="section-title">
                "What Weir does"
            </h2>
            <div class="card-grid">
                {FEATURES
                    .iter()
                    .map(|f| {
                        view! {
                            <article class="card">
                                <h3>{f.title}</h3>
                                <p>{f.body}</p>
                            </article>
                        }
                    })
                    .collect_view()}
            </div>
        </section>

        <section class="container section" aria-labelledby="steps-title">
            <h2 id="steps-title" class="section-title">
                "How it works"
            </h2>
            <ol class="steps">
                {STEPS
                    .iter()
                    .map(|s| {
                        view! {
                            <li class="step">
                                <h3>{s.title}</h3>
                                <p>{s.body}</p>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        </section>

        <section class="container section">
            <Quickstart/>
        </section>
    }
}

/// Scrolls the element with this id, if there is one, into view.
fn scroll_to_element(id: &str) {
    if id.is_empty() {
        return;
    }
    if let Some(target) = document().get_element_by_id(id) {
        target.scroll_into_view();
    }
}
