//! `/`: what Weir is, how it works, and the quickstart.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::quickstart::Quickstart;

/// One thing Weir does for a team, shown as a card.
struct Feature {
    title: &'static str,
    body: &'static str,
}

const FEATURES: [Feature; 4] = [
    Feature {
        title: "Any provider, one endpoint",
        body: "OpenAI, Anthropic, Gemini, Cohere, or any OpenAI-compatible host, \
               including a local Ollama or vLLM.",
    },
    Feature {
        title: "Formats translated",
        body: "Send OpenAI Chat or Anthropic Messages; Weir speaks the upstream's wire format \
               and streams the answer back in yours.",
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

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="Weir · LLM API gateway with prepaid billing"/>
        <section class="hero">
            <div class="container">
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
