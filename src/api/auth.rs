//! Auth: one bearer token per installation.
//!
//! The token is created on first start in the state directory (mode 0600) and printed
//! by `netguardian token`. Mutating operations take [`Token`]; reads take [`Reader`],
//! which also admits anonymous callers when `api.anonymous_reads` is set.

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::ApiState;
use super::error::ApiError;

/// Bearer token (`Authorization: Bearer <token>`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_token")]
pub struct Token(());

async fn check_token(req: &Request, bearer: Bearer) -> Option<()> {
    let state = req.data::<Arc<ApiState>>()?;
    constant_time_eq(bearer.token.as_bytes(), state.token.as_bytes()).then_some(())
}

/// Callers of read operations: with the token, or anonymous (allowed only when the
/// configuration says so; [`Reader::check`] enforces it).
#[derive(SecurityScheme)]
pub enum Reader {
    Token(Token),
    #[oai(fallback)]
    Anonymous,
}

impl Reader {
    pub fn check(&self, state: &ApiState) -> Result<(), ApiError> {
        match self {
            Reader::Token(_) => Ok(()),
            Reader::Anonymous if state.cfg.api.anonymous_reads => Ok(()),
            Reader::Anonymous => Err(ApiError::unauthorized()),
        }
    }
}

/// Compares without an early exit, so response timing does not leak a token prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
        assert!(!super::constant_time_eq(b"", b"a"));
    }
}
