//! Which candidates a request may go to, and in what order: the requested model's targets
//! (then those of each fallback in `models`), filtered by the caller's allowed models, by the
//! routing hints and by the request's size, and ordered as the hints ask.
//!
//! Filters run in a fixed order; when one removes the last candidate the answer is a 400 that
//! names it (`provider.only`, `weir.require_tools`, the context window, …). Order, within the
//! requested model's candidates and then within each fallback's (fallbacks always come after):
//! providers named in `provider.order` first, in that order; then models matching
//! `weir.model_hints`, in the hints' order; then the `optimise` key (price, measured speed or
//! the catalog's ranking); ties keep the catalog's order (channel priority).
//!
//! A request without hints pays for the size checks only (one pass over its candidates).

pub mod hints;
pub mod speed;

use std::{borrow::Cow, sync::Arc};

use weir_core::{
    billing,
    catalog::{ModelKind, Snapshot, Target},
    limits::{glob, Limits},
    money::{Micros, PerMillion},
};

pub use self::{
    hints::{Hints, Optimise},
    speed::SpeedBook,
};
use crate::error::GatewayError;

/// Output tokens a request is expected to produce when it sets no limit (for `cost` and
/// `speed` ordering only; reservations use the model's own maximum).
pub const EXPECTED_OUTPUT: u64 = 512;

/// What routing needs to know of a request.
pub struct Ask<'a> {
    /// The model as the client named it.
    pub model: &'a str,
    pub kind: ModelKind,
    pub hints: Option<&'a Hints>,
    pub prompt_estimate: u64,
    pub max_output: Option<u32>,
}

/// The candidates of a request, best first.
#[derive(Debug)]
pub struct Route {
    pub targets: Vec<Target>,
    /// Model ids of the requested model's own candidates, when fallbacks were asked for (to
    /// tell a fallback's answer by its model).
    primary: Option<Vec<String>>,
}

impl Route {
    /// Whether fallback models were asked for (and resolved).
    pub fn has_fallbacks(&self) -> bool {
        self.primary.is_some()
    }

    /// Whether `t` serves a fallback model of `models` rather than the requested one.
    pub fn is_fallback(&self, t: &Target) -> bool {
        self.primary
            .as_ref()
            .is_some_and(|ids| !ids.iter().any(|id| *id == t.model.id))
    }
}

/// Resolves, filters and orders the candidates of `ask`.
pub fn route(
    snapshot: &Snapshot,
    speed: &SpeedBook,
    limits: Option<&Arc<Limits>>,
    ask: &Ask<'_>,
) -> Result<Route, GatewayError> {
    let first = snapshot
        .resolve(ask.model, ask.kind)
        .ok_or_else(|| GatewayError::model_not_found(ask.model))?;
    let first = crate::gateway::limits::allowed(limits, ask.model, first)?;
    let Some(h) = ask.hints else {
        let mut targets = first;
        fits(&mut targets, ask)?;
        return Ok(Route {
            targets,
            primary: None,
        });
    };
    // Groups: the requested model's candidates, then each fallback's.
    let mut groups: Vec<(&str, Vec<Target>)> = vec![(ask.model, first)];
    for (i, name) in h.models.iter().enumerate() {
        if name == ask.model {
            continue;
        }
        let Some(ts) = snapshot.resolve(name, ask.kind) else {
            return Err(GatewayError::invalid_param(
                format!("models[{i}]"),
                format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    shown(name)
                ),
            )
            .with_code("model_not_found"));
        };
        // A fallback the key may not use is skipped, not an error: the requested model is.
        let ts: Vec<Target> = match limits {
            Some(l) => ts
                .into_iter()
                .filter(|t| l.allows(name, &t.model.id))
                .collect(),
            None => ts,
        };
        groups.push((name, ts));
    }
    let primary =
        (groups.len() > 1).then(|| groups[0].1.iter().map(|t| t.model.id.clone()).collect());
    let expected_out = ask.max_output.map_or(EXPECTED_OUTPUT, u64::from);
    let mut targets = Vec::new();
    for (name, mut ts) in groups {
        order(
            snapshot,
            speed,
            h,
            name,
            ask.prompt_estimate,
            expected_out,
            &mut ts,
        );
        targets.extend(ts);
    }
    filter(snapshot, h, ask, &mut targets)?;
    fits(&mut targets, ask)?;
    Ok(Route { targets, primary })
}

fn shown(name: &str) -> String {
    name.chars().take(200).collect()
}

fn no_candidate(ask: &Ask<'_>, param: impl Into<Cow<'static, str>>, why: String) -> GatewayError {
    GatewayError::invalid_param(
        param,
        format!(
            "No candidate for the model `{}` is left: {why}",
            shown(ask.model)
        ),
    )
    .with_code("no_candidate")
}

/// Keeps the targets that pass `pred`; the error of `why` when none does.
fn keep(
    targets: &mut Vec<Target>,
    pred: impl Fn(&Target) -> bool,
    why: impl FnOnce(&[Target]) -> GatewayError,
) -> Result<(), GatewayError> {
    if targets.iter().all(&pred) {
        return Ok(());
    }
    if !targets.iter().any(&pred) {
        return Err(why(targets));
    }
    targets.retain(pred);
    Ok(())
}

/// Whether `t`'s provider is `name` (its id, display name or channel name, any case).
fn is_provider(snapshot: &Snapshot, t: &Target, name: &str) -> bool {
    let c = &t.channel;
    c.provider_id.eq_ignore_ascii_case(name)
        || c.name.eq_ignore_ascii_case(name)
        || snapshot
            .provider_name(&c.provider_id)
            .eq_ignore_ascii_case(name)
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

/// `p` marked up as the team pays it.
fn marked_up(p: PerMillion, markup_bps: i64) -> PerMillion {
    let bps = i128::from(markup_bps.max(0));
    let v = i128::from(p.0);
    PerMillion(i64::try_from(v + (v * bps + 9_999) / 10_000).unwrap_or(i64::MAX))
}

fn filter(
    snapshot: &Snapshot,
    h: &Hints,
    ask: &Ask<'_>,
    targets: &mut Vec<Target>,
) -> Result<(), GatewayError> {
    if !h.only.is_empty() {
        keep(
            targets,
            |t| h.only.iter().any(|p| is_provider(snapshot, t, p)),
            |_| {
                no_candidate(
                    ask,
                    "provider.only",
                    format!(
                        "none is served by a provider in provider.only ({}).",
                        list(&h.only)
                    ),
                )
            },
        )?;
    }
    if !h.ignore.is_empty() {
        keep(
            targets,
            |t| !h.ignore.iter().any(|p| is_provider(snapshot, t, p)),
            |_| {
                no_candidate(
                    ask,
                    "provider.ignore",
                    format!(
                        "every one is served by a provider in provider.ignore ({}).",
                        list(&h.ignore)
                    ),
                )
            },
        )?;
    }
    if !h.allow_fallbacks && !h.order.is_empty() {
        keep(
            targets,
            |t| h.order.iter().any(|p| is_provider(snapshot, t, p)),
            |_| {
                no_candidate(ask, "provider.allow_fallbacks", format!("none is served by a provider in provider.order ({}), and provider.allow_fallbacks is false.", list(&h.order)))
            },
        )?;
    }
    let r = h.require;
    for (on, param, what, has) in [
        (
            r.tools,
            "weir.require_tools",
            "tools",
            (|t: &Target| t.model.capabilities.tools) as fn(&Target) -> bool,
        ),
        (
            r.vision,
            "weir.require_vision",
            "image input",
            |t: &Target| {
                t.model.capabilities.vision || t.model.modalities.input.iter().any(|m| m == "image")
            },
        ),
        (
            r.json_schema,
            "weir.require_json_schema",
            "JSON schema output",
            |t: &Target| t.model.capabilities.json_schema,
        ),
    ] {
        if on {
            keep(targets, has, |ts| {
                no_candidate(
                    ask,
                    param,
                    format!(
                        "the {} remaining do not support {what} ({param}).",
                        ts.len()
                    ),
                )
            })?;
        }
    }
    let src = h.max_price_from;
    for (limit, param, line, price) in [
        (
            h.max_price.prompt,
            "prompt",
            "prompt",
            (|t: &Target| marked_up(t.tariff.input, t.tariff.markup_bps))
                as fn(&Target) -> PerMillion,
        ),
        (
            h.max_price.completion,
            "completion",
            "completion",
            |t: &Target| marked_up(t.tariff.output, t.tariff.markup_bps),
        ),
    ] {
        if let Some(max) = limit {
            keep(
                targets,
                |t| price(t) <= max,
                |ts| {
                    let cheapest = ts.iter().map(price).min().unwrap_or_default();
                    no_candidate(ask, format!("{src}.max_price.{param}"), format!(
                    "every one costs more than ${} per million {line} tokens ({src}.max_price.{param}); the cheapest costs ${}.",
                    Micros(max.0), Micros(cheapest.0)
                ))
                },
            )?;
        }
    }
    Ok(())
}

/// Drops candidates whose context window cannot hold the prompt; when none can, the 400 names
/// the limit as OpenAI words it. `max_tokens` is not held against the window or the model's
/// largest output: clients commonly send the largest value they know of, and upstreams
/// clamp it (the reservation is capped the same way).
fn fits(targets: &mut Vec<Target>, ask: &Ask<'_>) -> Result<(), GatewayError> {
    let prompt = ask.prompt_estimate;
    let window_ok =
        |t: &Target| t.model.context_window == 0 || prompt <= u64::from(t.model.context_window);
    keep(targets, window_ok, |ts| {
        let max = ts.iter().map(|t| t.model.context_window).max().unwrap_or(0);
        GatewayError::invalid_param(
            "messages",
            format!(
                "This model's maximum context length is {max} tokens. However, your messages resulted in about {prompt} tokens. Please reduce the length of the messages."
            ),
        )
        .with_code("context_length_exceeded")
    })
}

/// Orders one group's candidates (stable: ties keep the catalog's order).
fn order(
    snapshot: &Snapshot,
    speed: &SpeedBook,
    h: &Hints,
    name: &str,
    prompt: u64,
    expected_out: u64,
    ts: &mut [Target],
) {
    if ts.len() < 2 {
        return;
    }
    let ranking = snapshot.codename_models(name);
    let usage = billing::Usage {
        input: prompt,
        output: expected_out,
        ..billing::Usage::default()
    };
    let key = |t: &Target| -> (usize, usize, u64) {
        let by_order = h
            .order
            .iter()
            .position(|p| is_provider(snapshot, t, p))
            .unwrap_or(usize::MAX);
        let by_hint = h
            .model_hints
            .iter()
            .position(|p| glob(p, &t.model.id) || glob(p, &t.model.upstream_model))
            .unwrap_or(usize::MAX);
        // Unmeasured pairs sort first under the speed orders, so each is measured once.
        let by_optimise = match h.optimise {
            None => 0,
            Some(Optimise::Quality) => ranking
                .and_then(|ids| ids.iter().position(|id| *id == t.model.id))
                .map_or(u64::MAX, |p| p as u64),
            Some(Optimise::Cost) => {
                u64::try_from(billing::price(&usage, &t.tariff).total.0).unwrap_or(0)
            }
            Some(Optimise::Speed) => speed
                .get(t.channel.id, &t.model.id)
                .expected_us(expected_out)
                .unwrap_or(0),
            Some(Optimise::Latency) => speed.get(t.channel.id, &t.model.id).ttft_us,
            Some(Optimise::Throughput) => match speed.get(t.channel.id, &t.model.id).tps_milli {
                0 => 0,
                tps => u64::MAX - tps,
            },
        };
        (by_order, by_hint, by_optimise)
    };
    ts.sort_by_cached_key(key);
}
