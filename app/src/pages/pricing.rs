//! `/pricing`: the public price list. Until the live catalog is wired in, it shows example rows.

use leptos::prelude::*;
use leptos_meta::Title;

/// One row of the price table. Prices are decimal strings in US dollars per million tokens,
/// exactly as the catalog seed stores them: never floats.
struct ExampleRow {
    model: &'static str,
    provider: &'static str,
    context: &'static str,
    input_per_mtok: &'static str,
    output_per_mtok: &'static str,
}

/// Example rows: `demo/echo` plus upstream list prices from the catalog seed
/// (snapshot of 2026-07-18), before any markup.
const EXAMPLE_ROWS: [ExampleRow; 5] = [
    ExampleRow {
        model: "demo/echo",
        provider: "Weir (demo)",
        context: "—",
        input_per_mtok: "0.00",
        output_per_mtok: "0.00",
    },
    ExampleRow {
        model: "openai/gpt-5.4-mini",
        provider: "OpenAI",
        context: "1.05M",
        input_per_mtok: "0.75",
        output_per_mtok: "4.50",
    },
    ExampleRow {
        model: "anthropic/claude-sonnet-4-5",
        provider: "Anthropic",
        context: "200K",
        input_per_mtok: "3.00",
        output_per_mtok: "15.00",
    },
    ExampleRow {
        model: "gemini/gemini-2.5-flash",
        provider: "Google Gemini API",
        context: "1.05M",
        input_per_mtok: "0.30",
        output_per_mtok: "2.50",
    },
    ExampleRow {
        model: "cohere/command-r-08-2024",
        provider: "Cohere",
        context: "128K",
        input_per_mtok: "0.15",
        output_per_mtok: "0.60",
    },
];

#[component]
pub fn PricingPage() -> impl IntoView {
    view! {
        <Title text="Pricing · Weir"/>
        <section class="page-header">
            <div class="container">
                <p class="eyebrow">"Pricing"</p>
                <h1>"Pay for the tokens you use"</h1>
                <p class="lead">
                    "Each request is billed from your team's prepaid balance at the model's price "
                    "per million tokens, plus the markup set by whoever runs this Weir."
                </p>
            </div>
        </section>
        <section class="container section">
            <div class="notice" role="note">
                <strong>"Example data."</strong>
                " The live model catalog comes later. The rows below are examples: upstream list "
                "prices from the catalog snapshot of 2026-07-18, before markup, plus the "
                <code>"demo/echo"</code>
                " demo model. They are not what this server charges."
            </div>
            <div class="table-wrap">
                <table class="price-table">
                    <caption>"Example models and prices (not live)"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Model"</th>
                            <th scope="col">"Provider"</th>
                            <th scope="col" class="num">
                                "Context"
                            </th>
                            <th scope="col" class="num">
                                "Input $/1M"
                            </th>
                            <th scope="col" class="num">
                                "Output $/1M"
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {EXAMPLE_ROWS
                            .iter()
                            .map(|row| {
                                view! {
                                    <tr>
                                        <th scope="row">
                                            <code>{row.model}</code>
                                            <span class="badge">"Example"</span>
                                        </th>
                                        <td>{row.provider}</td>
                                        <td class="num">{row.context}</td>
                                        <td class="num">"$" {row.input_per_mtok}</td>
                                        <td class="num">"$" {row.output_per_mtok}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
            <p class="note">
                "Context is the largest prompt a model accepts, in tokens. Long-context tiers, "
                "cached-input and cache-write rates will appear with the live catalog."
            </p>
        </section>
    }
}
