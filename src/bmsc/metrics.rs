//! The BM-SC's counters and latency histograms, exposed in the Prometheus
//! text format on the admin listener (`/metrics`). Lock-free: every field is
//! an atomic, shared by the drivers through an `Arc<Metrics>`.

use std::fmt::Write;

pub use crate::telemetry::{Counter, Gauge, Histogram};

/// HTTP status classes counted separately.
const STATUSES: [u16; 9] = [200, 400, 401, 403, 404, 405, 413, 415, 500];

/// Every metric of the BM-SC.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Registrations currently stored (refreshed by the status task).
    pub registrations: Gauge,
    /// Registration items answered 200.
    pub registrations_accepted: Counter,
    /// Deregistration items answered 200.
    pub deregistrations: Counter,
    /// MSK request items granted (item code 200; each MSK once per request).
    pub msk_requests: Counter,
    /// MSK messages sent for the first time.
    pub pushes_sent: Counter,
    /// MSK messages whose acknowledgement verified.
    pub pushes_acked: Counter,
    /// Retransmissions of MSK messages.
    pub pushes_retried: Counter,
    /// MSK messages given up after the retry limit.
    pub pushes_failed: Counter,
    /// Acknowledgements that did not match or verify.
    pub acks_rejected: Counter,
    /// Solicited pull messages sent.
    pub solicited_pulls: Counter,
    /// MSK invalidation messages sent.
    pub invalidations_sent: Counter,
    /// MSK switch-overs (a Key Group's current MSK replaced by the next).
    pub msk_rotations: Counter,
    /// MSK groups this node took the ownership of from another node (a cluster).
    pub cluster_takeovers: Counter,
    /// Work items of shared MSK fan-outs this node claimed (a cluster).
    pub fanout_items_claimed: Counter,
    /// Work items of shared MSK fan-outs this node closed: every push acknowledged or given up.
    pub fanout_items_done: Counter,
    /// MSK messages this node sent first for work items of shared fan-outs.
    pub fanout_messages: Counter,
    /// Acknowledgements of another node's pushes recorded, unverified, for it (a cluster).
    pub fanout_foreign_acks_recorded: Counter,
    /// Acknowledgements received by another node that closed a push of this node (a cluster).
    pub fanout_foreign_acks_verified: Counter,
    /// Acknowledgements of another node's pushes not recorded (over the rate cap, oversized,
    /// store error), or read back and not verified (a cluster).
    pub fanout_foreign_acks_dropped: Counter,
    /// MTK messages sent (first sends and repetitions).
    pub mtk_messages: Counter,
    /// MTKs generated.
    pub mtks_generated: Counter,
    /// HTTP Digest authentications refused.
    pub digest_failures: Counter,
    /// Datagrams read on the streaming services' `rtp_input`.
    pub media_packets_in: Counter,
    /// SRTP packets sent to `media_destination`.
    pub media_packets_sent: Counter,
    /// Reads of `rtp_input`, each of up to `MEDIA_BATCH` slots (`recvmmsg`), a slot one datagram
    /// or, with `UDP_GRO`, a run the kernel coalesced.
    pub media_input_reads: Counter,
    /// Datagrams on `rtp_input` that are not RTP (not version 2, truncated, over 1500 octets,
    /// bad padding): dropped.
    pub media_rtp_invalid: Counter,
    /// RTP packets dropped because no MTK was usable yet.
    pub media_no_key: Counter,
    /// RTP packets dropped for another SSRC, an index already used, or an SRTP failure.
    pub media_rejected: Counter,
    /// SRTP packets the system refused to send.
    pub media_send_errors: Counter,
    /// Changes of the MTK the media are protected under.
    pub media_key_switches: Counter,
    /// UDP segmentation offload sends the kernel refused on `media_destination` (the driver
    /// then sends one datagram per packet).
    pub media_gso_refused: Counter,
    /// Key-export clients connected now.
    pub key_export_clients: Gauge,
    /// Key-export connections accepted.
    pub key_export_connections: Counter,
    /// Key-export clients disconnected because they did not read fast enough.
    pub key_export_slow_clients: Counter,
    /// Key-export lines written in full.
    pub key_export_lines: Counter,
    /// HTTP responses by status, one counter per tracked status (see [`Self::http_status`]).
    pub http_statuses: [Counter; STATUSES.len()],
    /// HTTP responses with a status not tracked separately.
    pub http_other_status: Counter,
    /// Key Request handling latency.
    pub http_latency: Histogram,
    /// Duration of one MSK push fan-out.
    pub push_fanout_latency: Histogram,
    /// GBA key lookups answered from the store's key cache (Zn source only).
    pub gba_cache_hits: Counter,
    /// GBA key lookups the key cache could not answer, passed to the key source.
    pub gba_cache_misses: Counter,
    /// The Zn client's metrics, when the key source is Zn.
    pub zn: std::sync::OnceLock<std::sync::Arc<crate::gba::zn::ZnMetrics>>,
    /// The HTTP key source's metrics, when the key source is Nbsp_GBA or Naanf_AKMA.
    pub sbi: std::sync::OnceLock<std::sync::Arc<crate::gba::sbi::SbiMetrics>>,
    /// Configuration reloads by result (SIGHUP).
    pub reloads: super::reload::ReloadMetrics,
    /// The store's group-commit counts (commits, batch sizes).
    pub store: std::sync::OnceLock<std::sync::Arc<crate::bmsc::store::CommitStats>>,
}

impl Metrics {
    /// Counts one HTTP response status.
    pub fn http_status(&self, status: u16) {
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.http_statuses[i].inc(),
            None => self.http_other_status.inc(),
        }
    }

    /// The count of one HTTP status (0 for a status not tracked separately).
    pub fn http_status_count(&self, status: u16) -> u64 {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.http_statuses[i].get())
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &Counter); 36] = [
            (
                "gba_cache_hits_total",
                "GBA key lookups answered from the key cache",
                &self.gba_cache_hits,
            ),
            (
                "gba_cache_misses_total",
                "GBA key lookups passed to the key source",
                &self.gba_cache_misses,
            ),
            (
                "registrations_accepted_total",
                "Registrations answered 200",
                &self.registrations_accepted,
            ),
            (
                "deregistrations_total",
                "Deregistrations answered 200",
                &self.deregistrations,
            ),
            (
                "msk_requests_total",
                "MSK request items granted (item code 200; each MSK once per request)",
                &self.msk_requests,
            ),
            (
                "pushes_sent_total",
                "MSK messages sent for the first time",
                &self.pushes_sent,
            ),
            (
                "pushes_acked_total",
                "MSK messages acknowledged",
                &self.pushes_acked,
            ),
            (
                "pushes_retried_total",
                "MSK message retransmissions",
                &self.pushes_retried,
            ),
            (
                "pushes_failed_total",
                "MSK messages given up after the retry limit",
                &self.pushes_failed,
            ),
            (
                "acks_rejected_total",
                "Acknowledgements that did not match or verify",
                &self.acks_rejected,
            ),
            (
                "solicited_pulls_total",
                "Solicited pull messages sent",
                &self.solicited_pulls,
            ),
            (
                "invalidations_sent_total",
                "MSK invalidation messages sent",
                &self.invalidations_sent,
            ),
            (
                "msk_rotations_total",
                "MSK switch-overs",
                &self.msk_rotations,
            ),
            (
                "cluster_takeovers_total",
                "MSK groups taken over from another node",
                &self.cluster_takeovers,
            ),
            (
                "fanout_items_claimed_total",
                "Work items of shared MSK fan-outs claimed by this node",
                &self.fanout_items_claimed,
            ),
            (
                "fanout_items_done_total",
                "Work items of shared MSK fan-outs closed by this node",
                &self.fanout_items_done,
            ),
            (
                "fanout_messages_total",
                "MSK messages sent first by this node for shared fan-out work items",
                &self.fanout_messages,
            ),
            (
                "fanout_foreign_acks_recorded_total",
                "Acknowledgements of other nodes' pushes recorded for them",
                &self.fanout_foreign_acks_recorded,
            ),
            (
                "fanout_foreign_acks_verified_total",
                "Acknowledgements received by other nodes that closed pushes of this node",
                &self.fanout_foreign_acks_verified,
            ),
            (
                "fanout_foreign_acks_dropped_total",
                "Acknowledgements of other nodes' pushes dropped or not verified",
                &self.fanout_foreign_acks_dropped,
            ),
            (
                "mtk_messages_total",
                "MTK messages sent, repetitions included",
                &self.mtk_messages,
            ),
            (
                "mtks_generated_total",
                "MTKs generated",
                &self.mtks_generated,
            ),
            (
                "digest_failures_total",
                "HTTP Digest authentications refused",
                &self.digest_failures,
            ),
            (
                "media_packets_in_total",
                "Datagrams read on rtp_input",
                &self.media_packets_in,
            ),
            (
                "media_packets_sent_total",
                "SRTP packets sent to media_destination",
                &self.media_packets_sent,
            ),
            (
                "media_input_reads_total",
                "Reads of rtp_input (each up to 32 datagrams or coalesced runs)",
                &self.media_input_reads,
            ),
            (
                "media_rtp_invalid_total",
                "Datagrams on rtp_input dropped as not RTP",
                &self.media_rtp_invalid,
            ),
            (
                "media_no_key_total",
                "RTP packets dropped while no MTK was usable",
                &self.media_no_key,
            ),
            (
                "media_rejected_total",
                "RTP packets dropped for another SSRC, a used index or an SRTP failure",
                &self.media_rejected,
            ),
            (
                "media_send_errors_total",
                "SRTP packets the system refused to send",
                &self.media_send_errors,
            ),
            (
                "media_key_switches_total",
                "Changes of the MTK media are protected under",
                &self.media_key_switches,
            ),
            (
                "media_gso_refused_total",
                "UDP segmentation offload sends refused on media_destination (then one datagram per packet)",
                &self.media_gso_refused,
            ),
            (
                "key_export_connections_total",
                "Key-export connections accepted",
                &self.key_export_connections,
            ),
            (
                "key_export_slow_clients_total",
                "Key-export clients disconnected for not reading",
                &self.key_export_slow_clients,
            ),
            (
                "key_export_lines_total",
                "Key-export lines written",
                &self.key_export_lines,
            ),
            (
                "http_responses_other_total",
                "HTTP responses with another status",
                &self.http_other_status,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP mbms_bmsc_{name} {help}.");
            let _ = writeln!(out, "# TYPE mbms_bmsc_{name} counter");
            let _ = writeln!(out, "mbms_bmsc_{name} {}", c.get());
        }
        let _ = writeln!(
            out,
            "# HELP mbms_bmsc_registrations Registrations stored (counted after each change, every 10 s on a store shared by several nodes)."
        );
        let _ = writeln!(out, "# TYPE mbms_bmsc_registrations gauge");
        let _ = writeln!(out, "mbms_bmsc_registrations {}", self.registrations.get());
        let _ = writeln!(
            out,
            "# HELP mbms_bmsc_key_export_clients Key-export clients connected."
        );
        let _ = writeln!(out, "# TYPE mbms_bmsc_key_export_clients gauge");
        let _ = writeln!(
            out,
            "mbms_bmsc_key_export_clients {}",
            self.key_export_clients.get()
        );
        let _ = writeln!(
            out,
            "# HELP mbms_bmsc_http_responses_total HTTP responses by status."
        );
        let _ = writeln!(out, "# TYPE mbms_bmsc_http_responses_total counter");
        for (status, c) in STATUSES.iter().zip(&self.http_statuses) {
            let _ = writeln!(
                out,
                "mbms_bmsc_http_responses_total{{status=\"{status}\"}} {}",
                c.get()
            );
        }
        for (name, help, h) in [
            (
                "http_request_seconds",
                "Key Request handling latency",
                &self.http_latency,
            ),
            (
                "push_fanout_seconds",
                "MSK push fan-out duration",
                &self.push_fanout_latency,
            ),
        ] {
            h.render(&format!("mbms_bmsc_{name}"), help, &mut out);
        }
        if let Some(zn) = self.zn.get() {
            zn.render(&mut out);
        }
        if let Some(sbi) = self.sbi.get() {
            sbi.render(&mut out);
        }
        self.reloads.render(&mut out);
        if let Some(store) = self.store.get() {
            store.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn render_counts_and_buckets() {
        let m = Metrics::default();
        m.pushes_sent.add(3);
        m.http_status(401);
        m.http_status(418);
        m.http_latency.observe(Duration::from_micros(1500));
        let text = m.render();
        assert!(text.contains("mbms_bmsc_pushes_sent_total 3\n"));
        assert!(text.contains("mbms_bmsc_http_responses_total{status=\"401\"} 1\n"));
        assert!(text.contains("mbms_bmsc_http_responses_other_total 1\n"));
        assert!(text.contains("mbms_bmsc_http_request_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("mbms_bmsc_http_request_seconds_bucket{le=\"0.002\"} 1\n"));
        assert!(text.contains("mbms_bmsc_http_request_seconds_count 1\n"));
        assert_eq!(m.http_status_count(401), 1);
    }

    #[test]
    fn shared_fanout_counters_are_rendered_per_node() {
        let m = Metrics::default();
        m.fanout_items_claimed.add(4);
        m.fanout_items_done.add(3);
        m.fanout_messages.add(40);
        let text = m.render();
        assert!(text.contains("mbms_bmsc_fanout_items_claimed_total 4\n"));
        assert!(text.contains("mbms_bmsc_fanout_items_done_total 3\n"));
        assert!(text.contains("mbms_bmsc_fanout_messages_total 40\n"));
        assert!(text.contains("# TYPE mbms_bmsc_fanout_messages_total counter\n"));
    }

    #[test]
    fn msk_requests_help_says_it_counts_granted_items() {
        let text = Metrics::default().render();
        let help = text
            .lines()
            .find(|l| l.starts_with("# HELP mbms_bmsc_msk_requests_total "))
            .expect("HELP line");
        assert!(help.contains("items granted"), "{help}");
        assert!(!help.contains("answered 200"), "{help}");
    }
}
