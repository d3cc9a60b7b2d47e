//! The configured partners as ops see them: what they take, and their circuit breakers.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, OPS};
use crate::delivery::breaker::CircuitView;

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerView {
    pub id: String,
    /// Its messages are fetched by polling its outbox.
    pub polled: bool,
    /// Its call centre takes three-way call transfers.
    pub transfers: bool,
    /// At most this many deliveries in flight.
    pub concurrency: u32,
    pub circuit: CircuitView,
}

/// The configured partners, with their circuit breakers' states.
#[utoipa::path(get, path = "/api/v1/partners", tag = OPS,
    responses((status = 200, body = Vec<PartnerView>)))]
pub async fn list_partners(State(state): State<AppState>) -> Json<Vec<PartnerView>> {
    Json(
        state
            .engine
            .partner_ids()
            .filter_map(|id| {
                let p = state.engine.partner(id)?;
                Some(PartnerView {
                    id: id.to_owned(),
                    polled: p.adapter.polled(),
                    transfers: p.adapter.transfers(),
                    concurrency: p.concurrency,
                    circuit: p.breaker.view(),
                })
            })
            .collect(),
    )
}
