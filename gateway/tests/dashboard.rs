//! The dashboard over real HTTP: logins, sessions, CSRF, roles, masking, the audit log, retry,
//! replay, pause and the live feed. The browser tests (`dashboard_browser.rs`) drive the same
//! pages in Chromium.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::store::{AuditQuery, DeliveryStatus};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// A browser stand-in: keeps cookies, does not follow redirects.
struct Ui {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..].split('"').next().expect("value").to_owned()
    }
}

impl Ui {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header(COOKIE, cookie).send().await.expect("request");
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().expect("ascii cookie");
            let pair = c.split(';').next().expect("pair");
            let (k, v) = pair.split_once('=').expect("k=v");
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().expect("ascii").to_owned()),
            body: resp.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    async fn try_login(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/ui/login",
            &[("csrf", &csrf), ("user", user), ("password", password)],
        )
        .await
    }

    /// Logs in; returns the session's CSRF token.
    async fn login(&mut self, user: &str) -> String {
        let done = self.try_login(user, DASHBOARD_PASSWORD).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location.as_deref(), Some("/ui"));
        self.get("/ui").await.csrf()
    }
}

/// The audit log, newest first.
async fn audit(h: &Harness) -> Vec<hotline_gateway::store::AuditEntry> {
    h.gateway
        .store
        .audit_log(&AuditQuery::default())
        .await
        .expect("audit log")
}

async fn dead_letter(h: &Harness, n: usize) -> Vec<String> {
    h.sim.set_behaviour(Behaviour::Fail { status: 400 });
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, created) = h.post_ticket(&format!("DL-{i}")).await;
        assert_eq!(status, 201, "{created}");
        let id = first_delivery(&created);
        h.wait_for_status(&id, DeliveryStatus::Dead, Duration::from_secs(10))
            .await;
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn pages_need_a_login_and_actions_need_a_session() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let mut ui = Ui::new(&h.base);
    for path in ["/ui", "/ui/deliveries", "/ui/live", "/ui/audit", "/"] {
        let p = ui.get(path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
    }
    assert_eq!(ui.get("/ui").await.location.as_deref(), Some("/ui/login"));
    let p = ui
        .post("/ui/partners/p1/pause", &[("csrf", "x"), ("reason", "r")])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("log in first"));
    let login = ui.get("/ui/login").await;
    assert!(login.body.contains("登录 Log in"));
    let h_csp = h
        .http
        .get(format!("{}/ui/login", h.base))
        .send()
        .await
        .unwrap();
    let csp = h_csp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(h_csp.headers()["x-frame-options"], "DENY");
    let cookie = h_csp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn logins_need_the_form_token_the_right_password_and_lock_out() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let mut ui = Ui::new(&h.base);
    // No login-form cookie: a forged cross-site login is refused.
    let forged = ui
        .post(
            "/ui/login",
            &[
                ("csrf", "guess"),
                ("user", "li"),
                ("password", DASHBOARD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = ui.try_login("li", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("wrong user name or password"));
    let unknown = ui.try_login("nobody", DASHBOARD_PASSWORD).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "same answer as a wrong password"
    );
    assert!(unknown.body.contains("wrong user name or password"));
    ui.try_login("li", "still wrong").await;
    let third = ui.try_login("li", "wrong again").await;
    assert_eq!(third.status, StatusCode::UNAUTHORIZED);
    let locked = ui.try_login("li", DASHBOARD_PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(locked.body.contains("too many failed logins"));
    // Another user is not affected.
    let mut other = Ui::new(&h.base);
    other.login("zhao").await;
    let page = other.get("/ui").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("zhao · 只读 viewer"));
}

#[tokio::test]
async fn logging_out_ends_the_session() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let mut ui = Ui::new(&h.base);
    let csrf = ui.login("li").await;
    let session = ui.cookies["hg_session"].clone();
    let bad = ui.post("/ui/logout", &[("csrf", "stale")]).await;
    assert_eq!(
        bad.status,
        StatusCode::FORBIDDEN,
        "logout needs the token too"
    );
    let out = ui.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.location.as_deref(), Some("/ui/login"));
    // The old cookie no longer opens anything, even if a copy was kept.
    ui.cookies.insert("hg_session".into(), session);
    assert_eq!(ui.get("/ui").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn operators_retry_with_the_csrf_token_and_every_retry_is_audited() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let ids = dead_letter(&h, 1).await;
    let mut ui = Ui::new(&h.base);
    let csrf = ui.login("li").await;
    let dead = ui.get("/ui/dead").await;
    assert!(dead.body.contains(&ids[0]), "the dead letter is listed");
    assert!(dead.body.contains("class=\"retry\""));
    assert!(dead.body.contains("id=\"replay-all\""));
    h.sim.set_behaviour(Behaviour::Ack);
    let path = format!("/ui/deliveries/{}/retry", ids[0]);
    let forged = ui
        .post(&path, &[("csrf", "forged"), ("back", "/ui/dead")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("CSRF"));
    assert_eq!(
        h.delivery(&ids[0]).await.status,
        DeliveryStatus::Dead,
        "nothing happened"
    );
    let done = ui
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("back", "https://evil.example/"),
                ("reason", "对方已恢复 partner is back"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some("/ui/dead"),
        "no open redirect"
    );
    h.wait_for_status(
        &ids[0],
        DeliveryStatus::Acknowledged,
        Duration::from_secs(10),
    )
    .await;
    let again = ui.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "only dead letters are retried"
    );
    let audit = audit(&h).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "li");
    assert_eq!(audit[0].action, "delivery.retry");
    assert_eq!(audit[0].target.as_deref(), Some(ids[0].as_str()));
    assert_eq!(
        audit[0].reason.as_deref(),
        Some("对方已恢复 partner is back")
    );
    let page = ui.get("/ui/audit").await;
    assert!(page.body.contains("delivery.retry") && page.body.contains("✓"));
}

#[tokio::test]
async fn viewers_see_but_cannot_act_and_see_no_personal_data() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let ids = dead_letter(&h, 1).await;
    let d = h.delivery(&ids[0]).await;
    let ticket = h.gateway.store.ticket(d.ticket_id).await.unwrap().unwrap();
    let phone = ticket.draft.caller.phone.clone();
    let mut ui = Ui::new(&h.base);
    let csrf = ui.login("zhao").await;
    let dead = ui.get("/ui/dead").await;
    assert!(dead.body.contains(&ids[0]));
    assert!(!dead.body.contains("class=\"retry\""), "no retry button");
    assert!(!dead.body.contains("replay-all"), "no replay button");
    assert!(!dead.body.contains("/ui/audit"), "no audit link");
    for (path, form) in [
        (
            format!("/ui/deliveries/{}/retry", ids[0]),
            vec![("csrf", csrf.as_str())],
        ),
        (
            "/ui/dead/replay".to_owned(),
            vec![("csrf", csrf.as_str()), ("reason", "x")],
        ),
        (
            "/ui/partners/p1/pause".to_owned(),
            vec![("csrf", csrf.as_str()), ("reason", "x")],
        ),
        (
            format!("/ui/tickets/{}/unmask", d.ticket_id),
            vec![("csrf", csrf.as_str()), ("reason", "x")],
        ),
    ] {
        let p = ui.post(&path, &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        ui.get("/ui/dead/replay").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(ui.get("/ui/audit").await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.delivery(&ids[0]).await.status, DeliveryStatus::Dead);
    let page = ui.get(&format!("/ui/tickets/{}", d.ticket_id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&phone), "the phone number is masked");
    assert!(page.body.contains(&hotline_gateway::mask::phone(&phone)));
    assert!(!page.body.contains("Show personal data"));
    assert!(
        page.body.contains("HTTP 400"),
        "the failed attempt is shown"
    );
    assert!(page.body.contains("Wire payload"));
    assert!(
        audit(&h).await.is_empty(),
        "refused actions leave no entries"
    );
}

#[tokio::test]
async fn admins_unmask_personal_data_only_with_a_reason_and_it_is_audited() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let (_, created) = h.post_ticket("PII-1").await;
    let ticket_id = created["id"].as_str().unwrap().to_owned();
    let ticket = h
        .gateway
        .store
        .ticket(ticket_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let phone = ticket.draft.caller.phone.clone();
    let mut op = Ui::new(&h.base);
    let op_csrf = op.login("li").await;
    let path = format!("/ui/tickets/{ticket_id}/unmask");
    let refused = op
        .post(&path, &[("csrf", &op_csrf), ("reason", "好奇")])
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "operators may not unmask"
    );
    let mut admin = Ui::new(&h.base);
    let csrf = admin.login("wang").await;
    let masked = admin.get(&format!("/ui/tickets/{ticket_id}")).await;
    assert!(
        !masked.body.contains(&phone),
        "masked until asked, even for an admin"
    );
    assert!(masked.body.contains("Show personal data"));
    let no_reason = admin
        .post(&path, &[("csrf", &csrf), ("reason", "  ")])
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.body.contains("reason"));
    let shown = admin
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("reason", "回访核实身份 callback identity check"),
            ],
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains(&phone));
    assert!(shown.body.contains("personal data shown"));
    let audit = audit(&h).await;
    assert_eq!(audit.len(), 1, "one entry: the admin's view");
    assert_eq!(audit[0].action, "ticket.unmask");
    assert_eq!(audit[0].actor, "wang");
    assert_eq!(audit[0].target.as_deref(), Some(ticket_id.as_str()));
    assert_eq!(
        audit[0].reason.as_deref(),
        Some("回访核实身份 callback identity check")
    );
}

#[tokio::test]
async fn replay_by_filter_confirms_the_count_needs_a_reason_and_reports_progress() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(2), dashboard_users).await;
    let ids = dead_letter(&h, 5).await;
    h.sim.set_behaviour(Behaviour::Ack);
    let mut ui = Ui::new(&h.base);
    let csrf = ui.login("li").await;
    let confirm = ui.get("/ui/dead/replay?partner=p1&type=dispatch").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("id=\"replay-count\">5<"),
        "states how many"
    );
    let other = ui.get("/ui/dead/replay?type=urge").await;
    assert!(
        other.body.contains("id=\"replay-count\">0<"),
        "the filter counts"
    );
    let action = "/ui/dead/replay?partner=p1&type=dispatch";
    let no_reason = ui.post(action, &[("csrf", &csrf), ("expected", "5")]).await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let started = ui
        .post(
            action,
            &[
                ("csrf", &csrf),
                ("expected", "5"),
                ("reason", "12345 维护结束 maintenance over"),
            ],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let job = started.location.expect("job page");
    assert!(job.starts_with("/ui/jobs/"));
    let page = ui.get(&job).await;
    assert!(page.body.contains("job-progress"));
    let progress = format!("{job}/progress");
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = serde_json::from_str(&ui.get(&progress).await.body).unwrap();
        if last["finished"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["finished"], true, "{last}");
    assert_eq!(last["total"], 5);
    assert_eq!(last["requeued"], 5);
    for id in &ids {
        h.wait_for_status(id, DeliveryStatus::Acknowledged, Duration::from_secs(10))
            .await;
    }
    let audit = audit(&h).await;
    assert_eq!(audit[0].action, "deliveries.replay");
    assert_eq!(audit[0].detail["count"], 5);
    assert_eq!(
        audit[0].reason.as_deref(),
        Some("12345 维护结束 maintenance over")
    );
}

#[tokio::test]
async fn a_paused_partner_gets_nothing_until_resumed_even_across_a_restart() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let mut ui = Ui::new(&h.base);
    let csrf = ui.login("li").await;
    let no_reason = ui.post("/ui/partners/p1/pause", &[("csrf", &csrf)]).await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = ui
        .post(
            "/ui/partners/nope/pause",
            &[("csrf", &csrf), ("reason", "x")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let paused = ui
        .post(
            "/ui/partners/p1/pause",
            &[("csrf", &csrf), ("reason", "对方系统升级 partner upgrade")],
        )
        .await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.body);
    let page = ui.get("/ui/partners").await;
    assert!(
        page.body.contains("paused-badge") && page.body.contains("对方系统升级 partner upgrade")
    );
    let overview = ui.get("/ui").await;
    assert!(overview.body.contains("health-paused"));
    let (_, created) = h.post_ticket("PAUSE-1").await;
    let id = first_delivery(&created);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(h.sim.received().is_empty(), "nothing goes out while paused");
    assert_eq!(h.delivery(&id).await.status, DeliveryStatus::Pending);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("hotline_partner_paused{partner=\"p1\"} 1"),
        "{metrics}"
    );

    let h = h.restart(dashboard_users).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(h.sim.received().is_empty(), "still paused after a restart");
    let mut ui = Ui::new(&h.base);
    let csrf = ui.login("li").await;
    let resumed = ui.post("/ui/partners/p1/resume", &[("csrf", &csrf)]).await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER);
    h.wait_for_status(&id, DeliveryStatus::Acknowledged, Duration::from_secs(10))
        .await;
    let actions: Vec<String> = audit(&h).await.into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["partner.resume", "partner.pause"]);
}

#[tokio::test]
async fn the_live_feed_sends_partner_figures_and_filters_name_bad_fields() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let (_, created) = h.post_ticket("LIVE-1").await;
    h.wait_for_status(
        &first_delivery(&created),
        DeliveryStatus::Acknowledged,
        Duration::from_secs(10),
    )
    .await;
    let mut ui = Ui::new(&h.base);
    ui.login("zhao").await;
    let cookie = format!("hg_session={}", ui.cookies["hg_session"]);
    let mut resp = h
        .http
        .get(format!("{}/ui/live", h.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("more");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: overview"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let snap: serde_json::Value = serde_json::from_str(data).unwrap();
    let tile = &snap["tiles"][0];
    assert_eq!(tile["id"], "p1");
    assert_eq!(tile["delivered_5m"], 1);
    assert_eq!(tile["health"], "up");
    assert_eq!(snap["series"][0]["delivered"].as_array().unwrap().len(), 60);

    for (query, field) in [
        ("status=bogus", "status:"),
        ("since=yesterday", "since:"),
        ("type=fax", "type:"),
        ("partner=nope", "partner:"),
    ] {
        let p = ui.get(&format!("/ui/deliveries?{query}")).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(p.body.contains(field), "{query}: {}", p.body);
    }
    let found = ui.get("/ui/deliveries?number=LIVE-1").await;
    assert!(
        found.body.contains("id=\"total\">1<"),
        "found by the home number"
    );
}

#[tokio::test]
async fn late_acknowledgements_count_in_the_ack_latency() {
    let h = Harness::start_with(
        Behaviour::Async {
            delay: Duration::from_millis(300),
        },
        fast_retry(3),
        dashboard_users,
    )
    .await;
    let (_, created) = h.post_ticket("LATE-1").await;
    h.wait_for_status(
        &first_delivery(&created),
        DeliveryStatus::Acknowledged,
        Duration::from_secs(10),
    )
    .await;
    // The acknowledgement's handler counts it once its write is answered, which (the store's
    // log synced first) can come a moment after the status is seen in the database.
    let partner = h.gateway.engine.partner(PARTNER).expect("partner");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let view = loop {
        let view = partner.recent.view(chrono::Utc::now());
        if view.ack_p50_ms.is_some() || std::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(view.last_5m.delivered, 1, "counted once, at the receipt");
    let p50 = view.ack_p50_ms.expect("the late ack's latency");
    assert!(p50 >= 300.0, "{p50} ms includes the partner's delay");
}

#[tokio::test]
async fn the_legal_aid_board_lists_open_cases_and_flags_missed_deadlines() {
    use hotline_gateway::store::LegalAidCase;
    use hotline_model::legal_aid::CaseStatus;

    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), dashboard_users).await;
    let (status, created) = h.post_ticket("LA-1").await;
    assert_eq!(status, 201, "{created}");
    let ticket_id = h.delivery(&first_delivery(&created)).await.ticket_id;
    let now = chrono::Utc::now();
    let day = chrono::Duration::days(1);
    let case = |case_no: &str, status: CaseStatus| LegalAidCase {
        case_no: case_no.into(),
        ticket_id,
        version: 1,
        status,
        received_at: now - day * 5,
        decision_due: now + day * 2,
        decided_at: None,
        assignment_due: None,
        assigned_at: None,
        updated_at: now,
    };
    // Granted four days ago, no lawyer yet: the 3-day assignment deadline has passed.
    let mut granted = case("（2026）鲁0102法援01号", CaseStatus::Granted);
    granted.decided_at = Some(now - day * 4);
    granted.assignment_due = Some(now - day);
    let reviewing = case("（2026）鲁0102法援02号", CaseStatus::Reviewing);
    let closed = case("（2026）鲁0102法援03号", CaseStatus::Closed);
    for c in [&granted, &reviewing, &closed] {
        assert!(h.gateway.store.save_case(c, 0).await.unwrap());
    }

    let mut ui = Ui::new(&h.base);
    ui.login("zhao").await;
    assert!(
        ui.get("/ui").await.body.contains("href=\"/ui/legal-aid\""),
        "in the navigation"
    );
    let page = ui.get("/ui/legal-aid").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let row = |case_no: &str| {
        let at = page
            .body
            .find(&format!("data-case=\"{case_no}\""))
            .unwrap_or_else(|| panic!("{case_no} listed"));
        page.body[at..]
            .split("</tr>")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let late = row(&granted.case_no);
    assert!(late.contains("st-granted"), "{late}");
    assert!(late.contains(&format!("/ui/tickets/{ticket_id}")), "{late}");
    assert!(late.contains("逾期 overdue"), "the lawyer is late: {late}");
    let on_time = row(&reviewing.case_no);
    assert!(on_time.contains("st-reviewing"), "{on_time}");
    assert!(!on_time.contains("逾期"), "within its deadline: {on_time}");
    assert!(
        !page.body.contains(&closed.case_no),
        "closed cases are not open"
    );
    assert!(
        page.body.contains("1 逾期 overdue"),
        "the count of late cases"
    );
}
