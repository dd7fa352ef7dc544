//! Pricing: the charge for a usage at a tariff, and the worst-case charge reserved before a
//! request runs. Pure integer arithmetic (`i128` inside, micro-USD out), no database.
//!
//! Rounding rule, applied per line item: the upstream cost of a line is
//! `ceil(tokens × price_per_million / 1e6)` ([`PerMillion::cost`]) and its markup is
//! `ceil(line_cost × markup_bps / 10_000)`. Lines with zero tokens cost nothing.

use crate::{
    catalog::Tariff,
    money::{Micros, PerMillion},
};

/// Token counts of one request, in the inclusive (OpenAI) convention: `input` includes
/// `cached_input` and `cache_write`; `output` includes `reasoning`. The gateway converts its
/// own usage type (and the provider's convention) into this one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl Usage {
    /// The same usage with inconsistent parts clamped to their totals: `cached_input` to
    /// `input`, then `cache_write` to what is left of `input`, and `reasoning` to `output`.
    /// This is what [`price`] charges and what settlement stores.
    pub fn normalized(&self) -> Usage {
        let cached_input = self.cached_input.min(self.input);
        let cache_write = self.cache_write.min(self.input - cached_input);
        Usage {
            input: self.input,
            cached_input,
            cache_write,
            output: self.output,
            reasoning: self.reasoning.min(self.output),
        }
    }
}

/// What a usage costs: `total = upstream + markup`, all non-negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Charge {
    /// The provider's price for the tokens (posted to `upstream_cost`).
    pub upstream: Micros,
    /// Weir's markup (posted to `revenue_markup`).
    pub markup: Micros,
    /// What the team pays.
    pub total: Micros,
}

const BPS: i128 = 10_000;

/// The five line items of a (normalized) usage with their prices, in a fixed order:
/// uncached input, cached input, cache write, output excluding reasoning, reasoning.
fn lines(u: &Usage, t: &Tariff) -> [(u64, PerMillion); 5] {
    [
        (u.input - u.cached_input - u.cache_write, t.input),
        (u.cached_input, t.cached_input.unwrap_or(t.input)),
        (u.cache_write, t.cache_write.unwrap_or(t.input)),
        (u.output - u.reasoning, t.output),
        (u.reasoning, t.reasoning.unwrap_or(t.output)),
    ]
}

/// The markup rate actually applied: negative markups are treated as 0, so a charge can never
/// be negative (a team balance is never credited by usage).
fn markup_bps(t: &Tariff) -> i128 {
    i128::from(t.markup_bps.max(0))
}

/// `ceil(cost × bps / 10_000)` for non-negative operands (no overflow: both fit in `i64`).
fn markup_of(cost: i128, bps: i128) -> i128 {
    (cost * bps + (BPS - 1)) / BPS
}

/// Builds a charge, saturating at `i64::MAX` while keeping `upstream + markup == total`.
fn charge(upstream: i128, markup: i128) -> Charge {
    let max = i128::from(i64::MAX);
    let upstream = upstream.clamp(0, max);
    let markup = markup.clamp(0, max - upstream);
    // Both conversions are in range after the clamps.
    let up = i64::try_from(upstream).unwrap_or(i64::MAX);
    let mk = i64::try_from(markup).unwrap_or(0);
    Charge {
        upstream: Micros(up),
        markup: Micros(mk),
        total: Micros(up.saturating_add(mk)),
    }
}

/// The charge for `usage` at `tariff`: each line item is costed with [`PerMillion::cost`]
/// (rounded up to a micro-USD) and marked up by `ceil(item × markup_bps / 10_000)`.
///
/// Line items: uncached input (`input − cached_input − cache_write`) at `input`; cached input at
/// `cached_input` (else `input`); cache writes at `cache_write` (else `input`); output
/// excluding reasoning at `output`; reasoning at `reasoning` (else `output`). The usage is
/// [normalized](Usage::normalized) first.
pub fn price(usage: &Usage, tariff: &Tariff) -> Charge {
    let u = usage.normalized();
    let bps = markup_bps(tariff);
    let mut upstream: i128 = 0;
    let mut markup: i128 = 0;
    for (tokens, p) in lines(&u, tariff) {
        let c = i128::from(p.cost(tokens).0);
        upstream += c;
        markup += markup_of(c, bps);
    }
    charge(upstream, markup)
}

/// The most a request with `prompt_tokens` of input and at most `max_output` tokens of output
/// can cost at `tariff`, capped at `cap` (a non-positive cap means "no cap").
///
/// Guarantee: for every usage `u` with `u.input ≤ prompt_tokens` and `u.output ≤ max_output`,
/// however the tokens split into cached, cache-write and reasoning parts,
/// `price(u, tariff).total ≤ worst_case(prompt_tokens, max_output, tariff, no cap)`.
/// It prices all input at the dearest input rate and all output at the dearest output rate, and
/// adds the few micro-USD that per-line rounding can add when the tokens split over several
/// lines. With flat prices this is `price(input = prompt, output = max_output)` plus at most a
/// handful of micro-USD.
pub fn worst_case(prompt_tokens: u64, max_output: u64, tariff: &Tariff, cap: Micros) -> Micros {
    let t = tariff;
    let dearest = |a: PerMillion, b: Option<PerMillion>, c: Option<PerMillion>| {
        PerMillion(a.0.max(b.unwrap_or(a).0).max(c.unwrap_or(a).0))
    };
    let p_in = dearest(t.input, t.cached_input, t.cache_write);
    let p_out = dearest(t.output, t.reasoning, None);
    // A split over k non-empty lines rounds up at most k − 1 micro-USD more than one line does
    // (each ceil adds < 1). Input has up to 3 lines, output up to 2.
    let lines_in = prompt_tokens.min(3);
    let lines_out = max_output.min(2);
    let upstream = i128::from(p_in.cost(prompt_tokens).0)
        + i128::from(p_out.cost(max_output).0)
        + i128::from(lines_in.saturating_sub(1))
        + i128::from(lines_out.saturating_sub(1));
    let bps = markup_bps(t);
    // Per-line markup ceilings likewise add at most (lines − 1) over one ceiling on the sum.
    let markup = if bps > 0 {
        markup_of(upstream.min(i128::from(i64::MAX)), bps)
            + i128::from((lines_in + lines_out).saturating_sub(1))
    } else {
        0
    };
    let worst = charge(upstream, markup).total;
    if cap.0 > 0 && worst > cap {
        cap
    } else {
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flat(input: i64, output: i64, markup_bps: i64) -> Tariff {
        Tariff {
            input: PerMillion(input),
            output: PerMillion(output),
            markup_bps,
            ..Tariff::default()
        }
    }

    fn inp(n: u64) -> Usage {
        Usage {
            input: n,
            ..Usage::default()
        }
    }

    #[test]
    fn zero_usage_and_zero_prices_cost_nothing() {
        let t = flat(3_000_000, 15_000_000, 2_000);
        assert_eq!(price(&Usage::default(), &t), Charge::default());
        let free = flat(0, 0, 5_000);
        let u = Usage {
            input: 1_000_000,
            output: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(price(&u, &free), Charge::default());
    }

    #[test]
    fn sub_micro_prices_round_up_per_line() {
        // $0.15 / 1M: one token is 0.15 micro-USD, billed as 1.
        let t = flat(150_000, 600_000, 0);
        assert_eq!(price(&inp(1), &t).total, Micros(1));
        assert_eq!(price(&inp(6), &t).total, Micros(1)); // 0.9
        assert_eq!(price(&inp(7), &t).total, Micros(2)); // 1.05

        // One input and one output token: two lines, each rounded up.
        let u = Usage {
            input: 1,
            output: 1,
            ..Usage::default()
        };
        assert_eq!(price(&u, &t).total, Micros(2));
        // A price below one micro-USD per million tokens still costs 1 for any token.
        assert_eq!(price(&inp(1), &flat(1, 0, 0)).total, Micros(1));
        assert_eq!(price(&inp(1_000_000), &flat(1, 0, 0)).total, Micros(1));
        assert_eq!(price(&inp(1_000_001), &flat(1, 0, 0)).total, Micros(2));
    }

    #[test]
    fn markup_rounds_up_per_line() {
        let t = flat(1_000_000, 0, 1_234); // $1/M, +12.34 %
        let c = price(&inp(1), &t); // 1 micro, markup ceil(0.1234) = 1
        assert_eq!(
            (c.upstream, c.markup, c.total),
            (Micros(1), Micros(1), Micros(2))
        );
        let c = price(&inp(100), &t); // 100 micro, markup ceil(12.34) = 13
        assert_eq!(
            (c.upstream, c.markup, c.total),
            (Micros(100), Micros(13), Micros(113))
        );
        let c = price(&inp(10_000), &t); // exact: 1234
        assert_eq!(c.markup, Micros(1_234));
        // No markup, and negative markups are ignored (usage never credits a team).
        assert_eq!(price(&inp(100), &flat(1_000_000, 0, 0)).markup, Micros(0));
        assert_eq!(
            price(&inp(100), &flat(1_000_000, 0, -20_000)).total,
            Micros(100)
        );
        // Markup applies per line: 1 input + 1 output token at $1/M each, 1 % markup.
        let u = Usage {
            input: 1,
            output: 1,
            ..Usage::default()
        };
        let c = price(&u, &flat(1_000_000, 1_000_000, 100));
        assert_eq!((c.upstream, c.markup), (Micros(2), Micros(2)));
    }

    #[test]
    fn line_items_use_their_prices_with_fallbacks() {
        let t = Tariff {
            input: PerMillion(3_000_000),
            cached_input: Some(PerMillion(300_000)),
            cache_write: Some(PerMillion(3_750_000)),
            output: PerMillion(15_000_000),
            reasoning: Some(PerMillion(20_000_000)),
            markup_bps: 0,
        };
        let u = Usage {
            input: 1_000_000,
            cached_input: 200_000,
            cache_write: 300_000,
            output: 100_000,
            reasoning: 40_000,
        };
        // 500k uncached × 3 + 200k × 0.3 + 300k × 3.75 + 60k × 15 + 40k × 20 (micro-USD).
        let want = 1_500_000 + 60_000 + 1_125_000 + 900_000 + 800_000;
        assert_eq!(price(&u, &t).total, Micros(want));
        // Without the optional prices, cached and cache writes fall back to input, reasoning
        // to output: the same as plain input and output.
        let plain = Tariff {
            cached_input: None,
            cache_write: None,
            reasoning: None,
            ..t
        };
        let flat_u = Usage {
            input: 1_000_000,
            output: 100_000,
            ..Usage::default()
        };
        assert_eq!(price(&u, &plain), price(&flat_u, &plain));
    }

    #[test]
    fn inconsistent_parts_are_clamped() {
        let t = Tariff {
            input: PerMillion(1_000_000),
            cached_input: Some(PerMillion(100_000)),
            cache_write: Some(PerMillion(2_000_000)),
            output: PerMillion(4_000_000),
            reasoning: Some(PerMillion(8_000_000)),
            markup_bps: 0,
        };
        // cached > input: all input is cached; nothing left for cache writes.
        let u = Usage {
            input: 10,
            cached_input: 50,
            cache_write: 5,
            output: 3,
            reasoning: 9,
        };
        let n = u.normalized();
        assert_eq!(
            n,
            Usage {
                input: 10,
                cached_input: 10,
                cache_write: 0,
                output: 3,
                reasoning: 3,
            }
        );
        assert_eq!(price(&u, &t), price(&n, &t));
        // 10 cached at 0.1 → 1; 3 reasoning at 8 → 24.
        assert_eq!(price(&u, &t).total, Micros(1 + 24));
        // cache_write clamped to what cached leaves.
        let u = Usage {
            input: 10,
            cached_input: 4,
            cache_write: 100,
            ..Usage::default()
        };
        assert_eq!(u.normalized().cache_write, 6);
    }

    #[test]
    fn extreme_values_saturate_consistently() {
        let t = flat(i64::MAX, i64::MAX, i64::MAX);
        let u = Usage {
            input: u64::MAX,
            output: u64::MAX,
            ..Usage::default()
        };
        let c = price(&u, &t);
        assert_eq!(c.total, Micros(i64::MAX));
        assert_eq!(c.upstream.0 + c.markup.0, c.total.0);
        assert_eq!(
            worst_case(u64::MAX, u64::MAX, &t, Micros(0)),
            Micros(i64::MAX)
        );
    }

    #[test]
    fn worst_case_prices_the_dearest_lines_and_caps() {
        let t = flat(150_000, 600_000, 0);
        // Flat prices, one token each side: the split slack is zero.
        assert_eq!(worst_case(1, 1, &t, Micros(0)), Micros(2));
        assert_eq!(worst_case(0, 0, &t, Micros(0)), Micros(0));
        // 1000 in, 500 out: 150 + 300 = 450, plus 2 + 1 rounding slack.
        assert_eq!(worst_case(1_000, 500, &t, Micros(0)), Micros(453));
        assert_eq!(worst_case(1_000, 500, &t, Micros(100)), Micros(100));
        // A dearer cache-write or reasoning price is what is reserved.
        let t2 = Tariff {
            cache_write: Some(PerMillion(1_500_000)),
            reasoning: Some(PerMillion(6_000_000)),
            ..t
        };
        assert_eq!(
            worst_case(1_000_000, 1_000_000, &t2, Micros(0)),
            Micros(1_500_000 + 6_000_000 + 3)
        );
    }

    /// 1,000,000 one-token requests at $0.15/M input and $0.60/M output with a 12.34 % markup:
    /// the sum of `price` equals an exact rational recompute rounded per line item, done here
    /// independently (as numerator/denominator fractions, ceiling by remainder).
    #[test]
    fn a_million_one_token_charges_have_zero_drift() {
        let t = Tariff {
            input: PerMillion(150_000),
            cached_input: Some(PerMillion(75_000)),
            cache_write: None,
            output: PerMillion(600_000),
            reasoning: None,
            markup_bps: 1_234,
        };
        fn ceil_div(n: i128, d: i128) -> i128 {
            let q = n / d;
            if n % d == 0 {
                q
            } else {
                q + 1
            }
        }
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let (mut sum_total, mut sum_up, mut sum_mk) = (0i128, 0i128, 0i128);
        let (mut exact_total, mut exact_up) = (0i128, 0i128);
        // The unrounded amount, as a fraction over 1e6 × 1e4.
        let mut unrounded_num: i128 = 0;
        for _ in 0..1_000_000u32 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // One token, on one of three lines: uncached input, cached input, or output.
            let (u, p) = match seed >> 62 {
                0 | 1 => (inp(1), 150_000i128),
                2 => (
                    Usage {
                        input: 1,
                        cached_input: 1,
                        ..Usage::default()
                    },
                    75_000,
                ),
                _ => (
                    Usage {
                        output: 1,
                        ..Usage::default()
                    },
                    600_000,
                ),
            };
            let c = price(&u, &t);
            sum_total += i128::from(c.total.0);
            sum_up += i128::from(c.upstream.0);
            sum_mk += i128::from(c.markup.0);
            let up = ceil_div(p, 1_000_000);
            let mk = ceil_div(up * 1_234, 10_000);
            exact_up += up;
            exact_total += up + mk;
            unrounded_num += p * (10_000 + 1_234);
        }
        assert_eq!(sum_total, exact_total);
        assert_eq!(sum_up, exact_up);
        assert_eq!(sum_up + sum_mk, sum_total);
        // Every one-token line rounds up to exactly 1 micro-USD of cost and 1 of markup.
        assert_eq!(sum_total, 2_000_000);
        // Rounding only ever goes up, by less than 2 micro-USD per request (cost + markup).
        let unrounded_ceiling = ceil_div(unrounded_num, 1_000_000 * 10_000);
        assert!(sum_total >= unrounded_ceiling);
        assert!(sum_total - unrounded_ceiling < 2 * 1_000_000);
    }

    fn tariff_strategy() -> impl Strategy<Value = Tariff> {
        let p = 0i64..50_000_000;
        (
            p.clone(),
            proptest::option::of(p.clone()),
            proptest::option::of(p.clone()),
            p.clone(),
            proptest::option::of(p),
            0i64..30_000,
        )
            .prop_map(|(i, c, w, o, r, m)| Tariff {
                input: PerMillion(i),
                cached_input: c.map(PerMillion),
                cache_write: w.map(PerMillion),
                output: PerMillion(o),
                reasoning: r.map(PerMillion),
                markup_bps: m,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// No split of at most `prompt` input and `max_out` output tokens costs more than the
        /// worst case: with exact token estimates a settlement never exceeds its reservation.
        #[test]
        fn worst_case_bounds_every_split(
            t in tariff_strategy(),
            prompt in 0u64..5_000,
            max_out in 0u64..5_000,
            fr in (0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100),
        ) {
            let input = prompt * fr.0 / 100;
            let cached = input * fr.1 / 100;
            let cache_write = (input - cached) * fr.2 / 100;
            let output = max_out * fr.3 / 100;
            let reasoning = output * fr.4 / 100;
            let u = Usage { input, cached_input: cached, cache_write, output, reasoning };
            let c = price(&u, &t);
            prop_assert_eq!(c.upstream.0 + c.markup.0, c.total.0);
            prop_assert!(c.total.0 >= 0);
            prop_assert!(c.total <= worst_case(prompt, max_out, &t, Micros(0)));
        }

        /// More tokens never cost less.
        #[test]
        fn price_is_monotonic(t in tariff_strategy(), a in 0u64..100_000, b in 0u64..100_000) {
            let lo = Usage { input: a.min(b), output: a.min(b), ..Usage::default() };
            let hi = Usage { input: a.max(b), output: a.max(b), ..Usage::default() };
            prop_assert!(price(&lo, &t).total <= price(&hi, &t).total);
        }
    }
}
