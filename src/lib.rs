//! netguardian: a home-network security monitor.
//!
//! Data moves one way through the stages, each a module (see ARCHITECTURE.md):
//! [`capture`] → [`decode`] → [`flow`], [`inventory`], [`proto`] → [`event`]s on the
//! [`pipeline`] bus → [`store`] and [`detect`] (rules → alerts → their lifecycle in the
//! store). [`config`] sits at the edge.

pub mod api;
pub mod capture;
pub mod config;
pub mod decode;
pub mod detect;
pub mod event;
pub mod flow;
pub mod inventory;
pub mod pipeline;
pub mod proto;
pub mod service;
pub mod store;
