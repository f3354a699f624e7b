//! `/metrics` in the Prometheus text format (OpenMetrics flavour), with `prometheus-client`.
//!
//! Nothing in the SFU or the broadcast code is hooked: at scrape time a collector reads the
//! workers' atomics (`WorkerStats`), the broadcasts' statuses, the port allocator and the HLS
//! store. The only metric kept here is the HTTP request counter, fed by a middleware
//! (`api::metrics`, which also serves the page).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::broadcast::policy::BroadcastState;
use crate::broadcast::Status;
use crate::sfu::stats::WorkerStats;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics that are counted as things happen (the rest is read at scrape time).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Labels: route (a coarse group, never a room id), method, status.
    http_requests: Family<Vec<(&'static str, String)>, Counter>,
    /// The counters of `http_requests` met so far, by their labels: counting a request then
    /// takes no allocation (it runs for every HLS part and playlist).
    request_counters: std::sync::RwLock<std::collections::HashMap<(&'static str, &'static str, u16), Counter>>,
    scrapes: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn count_request(&self, route: &'static str, method: &axum::http::Method, status: u16) {
        let key = (route, method_label(method), status);
        if let Some(c) = self.request_counters.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            c.inc();
            return;
        }
        let labels = vec![("route", route.to_owned()), ("method", key.1.to_owned()), ("status", status.to_string())];
        let counter = self.http_requests.get_or_create(&labels).clone();
        counter.inc();
        self.request_counters.write().unwrap_or_else(|e| e.into_inner()).insert(key, counter);
    }
}

/// The method as a label value: the standard ones by name, any other as `other` (the label's
/// values stay bounded whatever clients send).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The coarse route group of a path, for the request counter (bounded label values).
pub fn route_group(path: &str) -> &'static str {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next().unwrap_or(""), parts.next()) {
        ("api", Some("ops")) => "ops",
        ("api", Some("rooms")) => match (parts.next(), parts.next()) {
            (None, _) => "rooms",
            (Some(_), None) => "room",
            (Some(_), Some("join")) => "join",
            (Some(_), Some("broadcast")) => "broadcast",
            _ => "api_other",
        },
        ("api", _) => "api_other",
        ("ws", _) => "ws",
        ("hls", _) => "hls",
        ("metrics", _) => "metrics",
        ("healthz", _) | ("readyz", _) => "health",
        _ => "web",
    }
}

/// The whole exposition, as of now: the counters kept here and a snapshot of the rest.
pub fn render(metrics: &Metrics, snapshot: Snapshot) -> Result<String, fmt::Error> {
    metrics.scrapes.fetch_add(1, Ordering::Relaxed);
    let mut registry = Registry::with_prefix("roomcast");
    registry.register("http_requests", "HTTP requests answered, by route group, method and status", metrics.http_requests.clone());
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// What the collector reads, taken once per scrape.
pub struct Snapshot {
    /// Each SFU worker: index, alive, its counters.
    pub workers: Vec<(usize, bool, Arc<WorkerStats>)>,
    pub pipelines: Vec<(String, Status)>,
    pub hls: Vec<(String, hls_out::StreamStats)>,
    pub ports_in_use: usize,
    pub port_pairs: usize,
    /// Compositors in standby, ready for the next broadcast (`broadcast::spares`).
    pub compositor_spares: usize,
    pub rooms: usize,
    pub draining: bool,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").field("workers", &self.workers.len()).field("pipelines", &self.pipelines.len()).finish()
    }
}

/// RTP port pairs the configured range holds (even RTP port, odd RTCP).
pub fn port_pairs(min: u16, max: u16) -> usize {
    let start = min + (min % 2);
    (max.saturating_sub(start) / 2) as usize
}

type Labels = Vec<(&'static str, String)>;

/// One gauge family; values are integers or floats.
fn gauge<V: EncodeGaugeValue + Copy>(e: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, V)]) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, u64)]) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, &hls_out::DelayHistogram)]) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        m.encode_family(labels)?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum_seconds(),
            h.count,
            &h.buckets_seconds(),
            None,
        )?;
    }
    Ok(())
}

fn plain_gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

const STATES: [BroadcastState; 5] =
    [BroadcastState::Starting, BroadcastState::Live, BroadcastState::Restarting, BroadcastState::Failed, BroadcastState::Stopped];

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        let w = |i: usize| vec![("worker", i.to_string())];
        let worker_rows = |f: &dyn Fn(&WorkerStats) -> &AtomicU64| -> Vec<(Labels, u64)> {
            self.workers.iter().map(|(i, _, s)| (w(*i), WorkerStats::get(f(s)))).collect()
        };
        let as_gauge = |rows: Vec<(Labels, u64)>| -> Vec<(Labels, i64)> { rows.into_iter().map(|(l, v)| (l, v as i64)).collect() };

        // SFU workers.
        gauge(
            &mut e,
            "sfu_worker_up",
            "1 while the SFU worker thread runs",
            &self.workers.iter().map(|(i, up, _)| (w(*i), *up as i64)).collect::<Vec<_>>(),
        )?;
        gauge(&mut e, "sfu_rooms", "Rooms on the SFU worker", &as_gauge(worker_rows(&|s| &s.rooms)))?;
        gauge(&mut e, "sfu_participants", "Participants on the SFU worker", &as_gauge(worker_rows(&|s| &s.participants)))?;
        gauge(&mut e, "sfu_producers", "Producers (published tracks) on the SFU worker", &as_gauge(worker_rows(&|s| &s.producers)))?;
        gauge(&mut e, "sfu_consumers", "Consumers (forwarded tracks) on the SFU worker", &as_gauge(worker_rows(&|s| &s.consumers)))?;
        gauge(&mut e, "sfu_legs", "Plain-RTP legs to compositors on the SFU worker", &as_gauge(worker_rows(&|s| &s.legs)))?;
        counter(&mut e, "sfu_rtp_packets_in", "RTP packets received from publishers", &worker_rows(&|s| &s.rtp_packets_in))?;
        counter(&mut e, "sfu_rtp_bytes_in", "RTP payload bytes received from publishers", &worker_rows(&|s| &s.rtp_bytes_in))?;
        counter(&mut e, "sfu_rtp_packets_out", "RTP packets forwarded to subscribers", &worker_rows(&|s| &s.rtp_packets_out))?;
        counter(&mut e, "sfu_rtp_bytes_out", "RTP payload bytes forwarded to subscribers", &worker_rows(&|s| &s.rtp_bytes_out))?;
        counter(&mut e, "sfu_leg_packets_out", "RTP packets sent on plain-RTP legs to compositors", &worker_rows(&|s| &s.leg_packets_out))?;
        counter(
            &mut e,
            "sfu_keyframe_requests",
            "Keyframe requests (PLI or FIR) sent to publishers",
            &worker_rows(&|s| &s.keyframe_requests),
        )?;
        counter(
            &mut e,
            "sfu_keyframe_requests_fir",
            "Keyframe requests sent as FIR: a PLI that went unanswered for 500 ms, asked again",
            &worker_rows(&|s| &s.keyframe_requests_fir),
        )?;
        counter(&mut e, "sfu_nacks_sent", "NACKs sent to publishers (lost packets asked for again)", &worker_rows(&|s| &s.nacks_sent))?;
        counter(
            &mut e,
            "sfu_nacks_received",
            "NACKs received from subscribers (answered from the RTX cache)",
            &worker_rows(&|s| &s.nacks_received),
        )?;
        gauge(
            &mut e,
            "sfu_rtt_max_seconds",
            "Worst round-trip time (RTCP) to a participant on the SFU worker in the last stats window",
            &self.workers.iter().map(|(i, _, s)| (w(*i), WorkerStats::get(&s.rtt_max_us) as f64 / 1e6)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "sfu_ingress_loss_ppm",
            "Worst publisher packet loss in the last stats interval (parts per million)",
            &as_gauge(worker_rows(&|s| &s.ingress_loss_ppm)),
        )?;
        counter(&mut e, "sfu_datagrams_in", "UDP datagrams received by the SFU worker", &worker_rows(&|s| &s.datagrams_in))?;
        counter(&mut e, "sfu_datagrams_unrouted", "UDP datagrams no peer accepted", &worker_rows(&|s| &s.datagrams_unrouted))?;
        counter(
            &mut e,
            "sfu_loop_turns",
            "SFU worker loop iterations (stops growing when a worker is stuck)",
            &worker_rows(&|s| &s.loop_turns),
        )?;

        // Broadcasts (pipelines).
        let by_state: Vec<(Labels, i64)> = STATES
            .iter()
            .map(|st| (vec![("state", st.as_str().to_owned())], self.pipelines.iter().filter(|(_, s)| s.state == *st).count() as i64))
            .collect();
        gauge(&mut e, "broadcasts", "Broadcasts by state", &by_state)?;
        let room = |r: &str| vec![("room", r.to_owned())];
        counter(
            &mut e,
            "broadcast_restarts",
            "Compositor restarts of the room's broadcast",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.restarts as u64)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "broadcast_parts",
            "CMAF parts the room's compositor published",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.parts)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_legs",
            "Plain-RTP legs feeding the room's compositor",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.legs as i64)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_fps_in",
            "Video frames per second the room's compositor decodes, over all inputs",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.figures.fps_in.unwrap_or(0.0))).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_fps_out",
            "Frames per second the room's compositor outputs",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.figures.fps_out.unwrap_or(0.0))).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "broadcast_frames_dropped",
            "Input video frames lost before the grid (all compositor processes of the broadcast)",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.figures.frames_dropped)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "broadcast_mixer_catchups",
            "Times the video mixer was behind the clock and skipped the frames it was late for (the host starves the compositor of CPU)",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.figures.mixer_catchups)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "broadcast_packets_lost",
            "Input video RTP packets the compositor's jitter buffers gave up on (never arrived in time)",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.figures.packets_lost)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_encode_seconds",
            "Mean time a frame spent in the room's video encoder over the last stats interval",
            &self.pipelines.iter().filter_map(|(r, s)| s.figures.encode_ms.map(|ms| (room(r), ms / 1000.0))).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_encode_max_seconds",
            "Worst time a frame spent in the room's video encoder over the last stats interval",
            &self.pipelines.iter().filter_map(|(r, s)| s.figures.encode_ms_max.map(|ms| (room(r), ms / 1000.0))).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_stalled_inputs",
            "Compositor inputs with no media now (shown as placeholders)",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.figures.stalled_inputs as i64)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "broadcast_uptime_seconds",
            "Seconds since the room's broadcast last changed state",
            &self.pipelines.iter().map(|(r, s)| (room(r), s.since.elapsed().as_secs() as i64)).collect::<Vec<_>>(),
        )?;
        plain_gauge(&mut e, "rtp_ports_in_use", "RTP port pairs allocated to compositor legs", self.ports_in_use as i64)?;
        plain_gauge(&mut e, "rtp_ports_capacity", "RTP port pairs in the configured range", self.port_pairs as i64)?;
        plain_gauge(
            &mut e,
            "compositor_spares",
            "Compositors started ahead of need, ready for the next broadcast",
            self.compositor_spares as i64,
        )?;

        // HLS streams.
        gauge(
            &mut e,
            "hls_waiting_requests",
            "Playlist/part requests waiting (blocking reload, preload hints)",
            &self.hls.iter().map(|(r, s)| (room(r), s.waiting_requests as i64)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "hls_parts_published",
            "Parts the room's HLS stream published",
            &self.hls.iter().map(|(r, s)| (room(r), s.parts_published)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "hls_segments_published",
            "Segments the room's HLS stream published",
            &self.hls.iter().map(|(r, s)| (room(r), s.segments_published)).collect::<Vec<_>>(),
        )?;
        counter(
            &mut e,
            "hls_parts_dropped",
            "Parts the packager dropped",
            &self.hls.iter().map(|(r, s)| (room(r), s.parts_dropped)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "hls_discontinuity_sequence",
            "Discontinuities in the room's HLS stream (one per compositor restart)",
            &self.hls.iter().map(|(r, s)| (room(r), s.discontinuity_sequence as i64)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "hls_bytes_in_memory",
            "Media bytes the room's HLS stream holds",
            &self.hls.iter().map(|(r, s)| (room(r), s.bytes_in_memory as i64)).collect::<Vec<_>>(),
        )?;
        histogram(
            &mut e,
            "hls_part_publish_delay_seconds",
            "From a part's last frame being composed to the part being in the playlist (encode, mux, hand-over)",
            &self.hls.iter().map(|(r, s)| (room(r), &s.publish_delay)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "hls_viewers",
            "Distinct viewers of the room's HLS now (a playlist request within 3 target durations)",
            &self.hls.iter().map(|(r, s)| (room(r), s.viewers as i64)).collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "hls_viewers_peak",
            "Most viewers of the room's HLS at once since the broadcast started",
            &self.hls.iter().map(|(r, s)| (room(r), s.viewers_peak as i64)).collect::<Vec<_>>(),
        )?;

        plain_gauge(&mut e, "rooms", "Rooms in memory (ended rooms, empty for --room-idle-end-secs, are released)", self.rooms as i64)?;
        plain_gauge(&mut e, "draining", "1 while the node is draining (no new rooms)", self.draining as i64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_groups_never_carry_ids() {
        assert_eq!(route_group("/api/rooms"), "rooms");
        assert_eq!(route_group("/api/rooms/r-1"), "room");
        assert_eq!(route_group("/api/rooms/r-1/join"), "join");
        assert_eq!(route_group("/api/rooms/r-1/broadcast"), "broadcast");
        assert_eq!(route_group("/api/ops/pipelines/r-1/restart"), "ops");
        assert_eq!(route_group("/api/nope"), "api_other");
        assert_eq!(route_group("/hls/r-1/index.m3u8"), "hls");
        assert_eq!(route_group("/ws"), "ws");
        assert_eq!(route_group("/readyz"), "health");
        assert_eq!(route_group("/metrics"), "metrics");
        assert_eq!(route_group("/room/r-1"), "web");
    }

    #[test]
    fn requests_are_counted_per_route_method_and_status() {
        let m = Metrics::default();
        m.count_request("hls", &axum::http::Method::GET, 200);
        m.count_request("hls", &axum::http::Method::GET, 200);
        m.count_request("hls", &axum::http::Method::GET, 404);
        m.count_request("web", &axum::http::Method::from_bytes(b"BREW").unwrap(), 405);
        let snapshot = Snapshot {
            workers: vec![],
            pipelines: vec![],
            hls: vec![],
            ports_in_use: 0,
            port_pairs: 0,
            compositor_spares: 0,
            rooms: 0,
            draining: false,
        };
        let text = render(&m, snapshot).unwrap();
        let line = |l: &str| text.lines().any(|x| x == l);
        assert!(line(r#"roomcast_http_requests_total{route="hls",method="GET",status="200"} 2"#), "{text}");
        assert!(line(r#"roomcast_http_requests_total{route="hls",method="GET",status="404"} 1"#), "{text}");
        assert!(line(r#"roomcast_http_requests_total{route="web",method="other",status="405"} 1"#), "any other method is `other`: {text}");
    }

    #[test]
    fn port_pairs_of_a_range() {
        assert_eq!(port_pairs(41000, 49000), 4000);
        assert_eq!(port_pairs(41001, 41005), 1);
        assert_eq!(port_pairs(5, 3), 0);
    }
}
