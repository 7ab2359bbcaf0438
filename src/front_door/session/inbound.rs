//! What the client publishes: checked, handed to ingest (which numbers, stores and routes it),
//! and acknowledged, after the commit when acks are durable. While ingest's queue is full the
//! socket is not read, so TCP holds the publisher back.

use super::{Session, Waiting};
use crate::acl::Access;
use crate::ingest::{Incoming, Intake};
use crate::store::{Publisher, Receipt};
use rumqttd::protocol::{
    DisconnectReasonCode, Packet, PubAck, PubAckReason, PubRec, PubRecReason, Publish,
    PublishProperties, QoS,
};
use std::sync::atomic::Ordering::Relaxed;

impl Session {
    pub(super) async fn publish(
        &mut self,
        mut publish: Publish,
        mut properties: Option<PublishProperties>,
        qos: QoS,
        pkid: u16,
    ) -> Result<(), String> {
        if let Some(alias) = properties.as_mut().and_then(|p| p.topic_alias.take()) {
            self.resolve_alias(alias, &mut publish)?;
        }
        // [MQTT-3.3.4-6] Only a server sends subscription identifiers.
        if properties
            .as_ref()
            .is_some_and(|p| !p.subscription_identifiers.is_empty())
        {
            return Err(self.fail(
                DisconnectReasonCode::ProtocolError,
                "a PUBLISH with a subscription identifier",
            ));
        }
        if !crate::topic::valid_name(&publish.topic) {
            return Err(self.fail(
                DisconnectReasonCode::TopicNameInvalid,
                "invalid topic name in PUBLISH",
            ));
        }
        if qos != QoS::AtMostOnce && self.over_receive_maximum(qos, pkid) {
            return Err(self.fail(
                DisconnectReasonCode::ReceiveMaximumExceeded,
                "more unacknowledged QoS 1/2 publishes than the Receive Maximum edgemq announced",
            ));
        }
        if qos == QoS::ExactlyOnce && !self.qos2_in.insert(pkid) {
            // A resent QoS 2 publish that is already here: acknowledge it again, nothing more.
            self.acknowledge(self.last_seq, Waiting::PubRec(pkid, PubRecReason::Success));
            return Ok(());
        }
        if !self.may_publish(&publish, properties.as_ref()) {
            self.refuse(qos, pkid);
            return Ok(());
        }
        let receipt = (qos != QoS::AtMostOnce && self.durable).then(|| {
            self.last_seq += 1;
            self.receipts.receipt(self.last_seq)
        });
        let received_at = crate::clock::now_ms();
        let metrics = &self.shared.metrics;
        metrics.received.fetch_add(1, Relaxed);
        metrics.last_message_ms.store(received_at as u64, Relaxed);
        let incoming = self.incoming(&publish, &properties, qos as u8, received_at, receipt);
        // Ingest numbers it, stores it and hands its copy to the router.
        self.hand_to_ingest(incoming).await?;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.acknowledge(self.last_seq, Waiting::PubAck(pkid, PubAckReason::Success))
            }
            QoS::ExactlyOnce => {
                self.acknowledge(self.last_seq, Waiting::PubRec(pkid, PubRecReason::Success))
            }
        }
        Ok(())
    }

    /// Whether the ACL lets the client publish this: its topic, and for a request to edgemq's
    /// `[[rpc]]`, its MQTT 5 response topic must be one the client may read (the reply goes
    /// there). A denial is counted and logged.
    fn may_publish(&mut self, publish: &Publish, properties: Option<&PublishProperties>) -> bool {
        let topic = String::from_utf8_lossy(&publish.topic);
        if !self.may(&topic, Access::Write) {
            self.denied(|m| &m.denied_publishes, "publish to", &topic);
            return false;
        }
        let response = properties.and_then(|p| p.response_topic.as_deref());
        let Some(response) = response else {
            return true;
        };
        let rpc = &self.shared.rpc_requests;
        if rpc.iter().any(|f| crate::topic::matches(f, &topic)) && !self.may(response, Access::Read)
        {
            self.denied(|m| &m.denied_publishes, "a request answered on", response);
            return false;
        }
        true
    }

    /// A publish the ACL refused: not stored, not routed. MQTT 5 is told 0x87; 3.1.1 is
    /// acknowledged as usual (as Mosquitto does), and its QoS 2 exchange finishes.
    fn refuse(&mut self, qos: QoS, pkid: u16) {
        let v5 = self.client.version.is_v5();
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let reason = match v5 {
                    true => PubAckReason::NotAuthorized,
                    false => PubAckReason::Success,
                };
                self.acknowledge(self.last_seq, Waiting::PubAck(pkid, reason));
            }
            QoS::ExactlyOnce => {
                let reason = match v5 {
                    true => PubRecReason::NotAuthorized,
                    false => PubRecReason::Success,
                };
                // An MQTT 5 PUBREC with an error ends the exchange: no PUBREL comes.
                if v5 {
                    self.qos2_in.remove(&pkid);
                }
                self.acknowledge(self.last_seq, Waiting::PubRec(pkid, reason));
            }
        }
    }

    /// A client's topic alias: set to the PUBLISH's topic, or, with an empty topic, used for
    /// it [MQTT-3.3.2-7 .. 3.3.2-12]. Past the Topic Alias Maximum edgemq announced (or 0) is
    /// 0x94; an alias never set is a protocol error.
    fn resolve_alias(&mut self, alias: u16, publish: &mut Publish) -> Result<(), String> {
        let max = self.shared.settings.topic_alias_maximum;
        if alias == 0 || alias > max {
            return Err(self.fail(
                DisconnectReasonCode::TopicAliasInvalid,
                &format!("topic alias {alias} is not within 1..={max} (Topic Alias Maximum)"),
            ));
        }
        if !publish.topic.is_empty() {
            self.topic_aliases.insert(alias, publish.topic.clone());
            return Ok(());
        }
        match self.topic_aliases.get(&alias) {
            Some(topic) => {
                publish.topic = topic.clone();
                Ok(())
            }
            None => Err(self.fail(
                DisconnectReasonCode::ProtocolError,
                &format!("topic alias {alias} was never set"),
            )),
        }
    }

    /// Whether a new QoS 1/2 publish would be one more unacknowledged than the Receive Maximum
    /// announced to an MQTT 5 client [MQTT-3.3.4-9]: QoS 1 until its PUBACK is sent, QoS 2
    /// until its PUBREL comes. (A resent QoS 2 publish is not a new one.)
    fn over_receive_maximum(&self, qos: QoS, pkid: u16) -> bool {
        if !self.client.version.is_v5() || (qos == QoS::ExactlyOnce && self.qos2_in.contains(&pkid))
        {
            return false;
        }
        let unacknowledged_qos1 = self
            .waiting
            .iter()
            .filter(|(_, ack)| matches!(ack, Waiting::PubAck(..)))
            .count();
        unacknowledged_qos1 + self.qos2_in.len() >= usize::from(super::RECEIVE_MAXIMUM)
    }

    /// What ingest gets of a publish from this client (or of its will).
    pub(super) fn incoming(
        &self,
        publish: &Publish,
        properties: &Option<PublishProperties>,
        qos: u8,
        received_at: i64,
        receipt: Option<Receipt>,
    ) -> Incoming {
        Incoming {
            topic: publish.topic.clone(),
            payload: publish.payload.clone(),
            received_at,
            properties: properties.clone().map(Box::new),
            publisher: Some(Publisher {
                client_id: self.client.client_id.clone(),
                username: self.client.username.clone(),
                qos,
                retain: publish.retain,
            }),
            receipt,
        }
    }

    /// Waits while the store is behind: this connection's socket is not read meanwhile, so TCP
    /// holds the publisher back.
    pub(super) async fn hand_to_ingest(&self, incoming: Incoming) -> Result<(), String> {
        let intake = &self.shared.intake;
        let stopping = |_| "edgemq is stopping".to_string();
        match intake.try_send(Intake::Message(incoming)) {
            Ok(()) => Ok(()),
            Err(flume::TrySendError::Full(item)) => {
                let m = &self.shared.metrics;
                m.held_back.fetch_add(1, Relaxed);
                m.queue_depth
                    .store(intake.capacity().unwrap_or(0) as u64, Relaxed);
                intake.send_async(item).await.map_err(|_| stopping(()))
            }
            Err(flume::TrySendError::Disconnected(_)) => Err(stopping(())),
        }
    }

    /// Sends the acknowledgement now, or once message `seq` is committed when acks are durable.
    pub(super) fn acknowledge(&mut self, seq: u64, ack: Waiting) {
        if self.durable {
            self.waiting.push_back((seq, ack));
            if self.receipts.committed() >= seq {
                self.release_acks();
            }
        } else {
            self.write_ack(ack);
        }
    }

    pub(super) fn release_acks(&mut self) {
        let committed = self.receipts.committed();
        while let Some((seq, _)) = self.waiting.front() {
            if *seq > committed {
                break;
            }
            if let Some((_, ack)) = self.waiting.pop_front() {
                self.write_ack(ack);
            }
        }
    }

    pub(super) fn write_ack(&mut self, ack: Waiting) {
        let packet = match ack {
            Waiting::PubAck(pkid, reason) => Packet::PubAck(PubAck { pkid, reason }, None),
            Waiting::PubRec(pkid, reason) => Packet::PubRec(PubRec { pkid, reason }, None),
        };
        self.write(packet);
    }
}
