//! Fault directives: `[[mock key=value flag]]` in the prompt text or the `x-mock-fault` header,
//! parsed into one [`Directive`] per request.

use std::borrow::Cow;

use axum::http::StatusCode;

const OPEN: &str = "[[mock";
const CLOSE: &str = "]]";

/// Upper bound for `delay_ms` and `chunk_delay_ms`: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;
/// Upper bound for `words`: keeps a typo from allocating gigabytes.
const MAX_WORDS: u64 = 1_000_000;

/// What a request asked the mock to do besides answering normally. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Directive {
    /// Answer with this status and the format's error envelope.
    pub status: Option<StatusCode>,
    /// `retry-after` seconds sent with `status`.
    pub retry_after: Option<u64>,
    /// Wait before sending the response headers.
    pub delay_ms: Option<u64>,
    /// Wait between stream events.
    pub chunk_delay_ms: Option<u64>,
    /// Abort the TCP connection with a RST after this many content events.
    pub reset_after: Option<usize>,
    /// Send the format's in-stream error after this many content events, then end.
    pub error_after: Option<usize>,
    /// Stop sending after this many content events; keep the connection open.
    pub stall_after: Option<usize>,
    /// Send no usage at all.
    pub no_usage: bool,
    /// Emit a data line with invalid JSON after the first content event.
    pub malformed: bool,
    /// Reply with `w1 w2 … wn` instead of the echo.
    pub words: Option<u64>,
}

impl Directive {
    /// Parses an `x-mock-fault` header: either `[[mock …]]` directives or their bare contents.
    #[cfg(test)]
    pub(super) fn from_header(value: &str) -> Result<Directive, String> {
        let mut directive = Directive::default();
        directive.apply_header(value)?;
        Ok(directive)
    }

    /// Applies an `x-mock-fault` header's directives over these.
    pub(super) fn apply_header(&mut self, value: &str) -> Result<(), String> {
        if value.contains(OPEN) {
            strip(value, self)?;
            Ok(())
        } else {
            self.apply_all(value)
        }
    }

    /// The directives of an API key `mock-fault:<key=value>+<key=value>…`, which apply to
    /// every request made with it (a channel of its own behaviour, e.g. a slow host); `None`
    /// for any other key.
    pub(super) fn from_key(key: &str) -> Option<Result<Directive, String>> {
        let body = key.strip_prefix("mock-fault:")?;
        let mut directive = Directive::default();
        Some(
            body.split('+')
                .filter(|t| !t.is_empty())
                .try_for_each(|t| directive.apply(t))
                .map(|()| directive),
        )
    }

    fn apply_all(&mut self, body: &str) -> Result<(), String> {
        body.split_whitespace()
            .try_for_each(|token| self.apply(token))
    }

    fn apply(&mut self, token: &str) -> Result<(), String> {
        let Some((key, value)) = token.split_once('=') else {
            return match token {
                "no_usage" => {
                    self.no_usage = true;
                    Ok(())
                }
                "malformed" => {
                    self.malformed = true;
                    Ok(())
                }
                _ => Err(format!("mock directive: unknown flag `{token}`")),
            };
        };
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("mock directive: `{key}` needs a whole number, got `{value}`"))
        };
        let count = || number().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let delay = || match number()? {
            n if n <= MAX_DELAY_MS => Ok(n),
            n => Err(format!(
                "mock directive: `{key}={n}` is over the {MAX_DELAY_MS} ms cap"
            )),
        };
        match key {
            "status" => {
                let code = number()?;
                let status = u16::try_from(code)
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .filter(|s| s.as_u16() >= 400)
                    .ok_or_else(|| {
                        format!("mock directive: `status={code}` is not an error status")
                    })?;
                self.status = Some(status);
            }
            "retry_after" => self.retry_after = Some(number()?),
            "delay_ms" => self.delay_ms = Some(delay()?),
            "chunk_delay_ms" => self.chunk_delay_ms = Some(delay()?),
            "reset_after" => self.reset_after = Some(count()?),
            "error_after" => self.error_after = Some(count()?),
            "stall_after" => self.stall_after = Some(count()?),
            "words" => match number()? {
                n if n <= MAX_WORDS => self.words = Some(n),
                n => return Err(format!("mock directive: `words={n}` is over {MAX_WORDS}")),
            },
            _ => return Err(format!("mock directive: unknown key `{key}`")),
        }
        Ok(())
    }
}

/// Removes every `[[mock …]]` directive from `text`, applying each to `into` (later keys win),
/// and returns the remaining text. Text without directives is returned as is, unallocated.
pub(super) fn strip<'t>(text: &'t str, into: &mut Directive) -> Result<Cow<'t, str>, String> {
    if !text.contains(OPEN) {
        return Ok(Cow::Borrowed(text));
    }
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        // `[[mockery]]` is ordinary text: the keyword must end at whitespace or the closing `]]`.
        if !(after.starts_with(char::is_whitespace) || after.starts_with(CLOSE)) {
            kept.push_str(&rest[..start + OPEN.len()]);
            rest = after;
            continue;
        }
        // An unclosed `[[mock` is ordinary text too.
        let Some(end) = after.find(CLOSE) else {
            break;
        };
        into.apply_all(&after[..end])?;
        kept.push_str(&rest[..start]);
        kept.push(' ');
        rest = &after[end + CLOSE.len()..];
    }
    kept.push_str(rest);
    Ok(Cow::Owned(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_directive_is_borrowed() {
        let mut d = Directive::default();
        let text = strip("hello world", &mut d).unwrap();
        assert!(matches!(text, Cow::Borrowed("hello world")));
        assert_eq!(d, Directive::default());
    }

    #[test]
    fn directive_is_parsed_and_removed() {
        let mut d = Directive::default();
        let text = strip(
            "say[[mock status=529 retry_after=3 no_usage]]hi [[mock words=4 malformed]]",
            &mut d,
        )
        .unwrap();
        assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["say", "hi"]);
        assert_eq!(d.status, Some(StatusCode::from_u16(529).unwrap()));
        assert_eq!(d.retry_after, Some(3));
        assert_eq!(d.words, Some(4));
        assert!(d.no_usage && d.malformed);
    }

    #[test]
    fn all_keys_parse() {
        let d = Directive::from_header(
            "delay_ms=5 chunk_delay_ms=6 reset_after=1 error_after=2 stall_after=3",
        )
        .unwrap();
        assert_eq!(d.delay_ms, Some(5));
        assert_eq!(d.chunk_delay_ms, Some(6));
        assert_eq!(d.reset_after, Some(1));
        assert_eq!(d.error_after, Some(2));
        assert_eq!(d.stall_after, Some(3));
        let keyed = Directive::from_key("mock-fault:delay_ms=7+words=2")
            .unwrap()
            .unwrap();
        assert_eq!((keyed.delay_ms, keyed.words), (Some(7), Some(2)));
        assert!(Directive::from_key("sk-plain").is_none());
        assert!(Directive::from_key("mock-fault:nope=1").unwrap().is_err());
        let wrapped = Directive::from_header("[[mock delay_ms=5]]").unwrap();
        assert_eq!(wrapped.delay_ms, Some(5));
    }

    #[test]
    fn lookalikes_are_text() {
        let mut d = Directive::default();
        let text = strip("[[mockery]] and [[mock status=500", &mut d).unwrap();
        assert_eq!(text, "[[mockery]] and [[mock status=500");
        assert_eq!(d, Directive::default());
    }

    #[test]
    fn bad_directives_are_errors() {
        for bad in [
            "colour=red",
            "status=200",
            "status=abc",
            "loud",
            "delay_ms=600001",
            "words=1000001",
        ] {
            assert!(Directive::from_header(bad).is_err(), "{bad}");
        }
    }
}
