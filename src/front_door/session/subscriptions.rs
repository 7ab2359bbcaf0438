//! SUBSCRIBE and UNSUBSCRIBE for one session. Filters go to the router at QoS 0 (the session
//! decides each delivery's QoS from what it granted), except `$SYS` ones (answered here from
//! the `$SYS` tree) and other `$` filters (refused in the SUBACK); the router's SUBACK is merged
//! with our own codes, and every UNSUBSCRIBE gets exactly one UNSUBACK, sent when the router
//! answers the PINGREQ queued behind it. A filter may replay the log first (`replay`).

use super::outgoing::shared_filter;
use super::outgoing::Subscription;
use super::{replay, Session};
use crate::acl::Access;
use crate::broker::names;
use crate::front_door::sys::{self, is_sys_filter, SysTree};
use crate::topic;
use rumqttd::protocol::{
    Filter, Packet, PingReq, Publish, QoS, RetainForwardRule, SubAck, SubAckProperties, Subscribe,
    SubscribeProperties, SubscribeReasonCode, UnsubAckReason, Unsubscribe, UnsubscribeProperties,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A SUBSCRIBE waiting for the router's SUBACK.
pub(super) struct SubAckInProgress {
    /// Per filter: our own code, or `None` where the router's comes in.
    codes: Vec<Option<SubscribeReasonCode>>,
    /// Each filter that went to the router, with the QoS granted and its identifier.
    granted: Vec<(String, QoS, Option<usize>)>,
    /// The new `$SYS` filters.
    new_sys: Vec<String>,
    /// How many of its filters replay the log.
    replays: usize,
    /// Filters that get no retained messages: by their Retain Handling, or replaying (the log
    /// holds their history).
    no_retained: Vec<String>,
}

impl Session {
    pub(super) fn subscribe(
        &mut self,
        subscribe: Subscribe,
        properties: Option<SubscribeProperties>,
        to_router: &mut Vec<Packet>,
    ) {
        let refused = if self.client.version.is_v5() {
            SubscribeReasonCode::TopicFilterInvalid
        } else {
            SubscribeReasonCode::Failure
        };
        // [MQTT-2.2.1-3] A SUBSCRIBE still waiting for its SUBACK holds its packet id.
        if self.subacks.contains_key(&subscribe.pkid) {
            tracing::info!(
                "client {}: SUBSCRIBE with packet id {} already in use",
                self.client.client_id,
                subscribe.pkid
            );
            let code = match self.client.version.is_v5() {
                true => SubscribeReasonCode::PkidInUse,
                false => SubscribeReasonCode::Failure,
            };
            let suback = SubAck {
                pkid: subscribe.pkid,
                return_codes: vec![code; subscribe.filters.len()],
            };
            self.write(Packet::SubAck(suback, None));
            return;
        }
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut forward = Vec::new();
        let mut new_sys = Vec::new();
        let mut granted_qos = Vec::new();
        let mut replays = 0;
        let mut no_retained = Vec::new();
        let replay_from = replay::from_properties(properties.as_ref());
        for mut filter in subscribe.filters {
            let requested = replay_from.clone().and_then(|from| {
                let (path, at) = replay::parse_filter(&filter.path)?;
                Ok((path.to_string(), at.or(from)))
            });
            let (path, replay_at) = match requested {
                Ok(requested) => requested,
                Err(why) => {
                    tracing::info!("client {}: subscribe refused: {why}", self.client.client_id);
                    codes.push(Some(refused));
                    continue;
                }
            };
            filter.path = path;
            let valid = topic::valid_filter(&filter.path);
            if valid && !self.may_ever_read(shared_filter(&filter.path)) {
                self.denied(|m| &m.denied_subscriptions, "subscribe to", &filter.path);
                codes.push(Some(match self.client.version.is_v5() {
                    true => SubscribeReasonCode::NotAuthorized,
                    false => SubscribeReasonCode::Failure,
                }));
            } else if valid && is_sys_filter(&filter.path) {
                if !self.sys_filters.contains(&filter.path) {
                    self.sys_filters.push(filter.path.clone());
                }
                new_sys.push(filter.path);
                codes.push(Some(SubscribeReasonCode::QoS0));
            } else if !valid
                || (filter.path.starts_with('$') && !filter.path.starts_with("$share/"))
            {
                codes.push(Some(refused));
            } else {
                let replay_from = match replay_at.map(|at| self.replay_start(at)).transpose() {
                    Ok(from) => from,
                    Err(why) => {
                        tracing::warn!(
                            "client {}: cannot replay `{}`: {why}",
                            self.client.client_id,
                            filter.path
                        );
                        codes.push(Some(match self.client.version.is_v5() {
                            true => SubscribeReasonCode::ImplementationSpecific,
                            false => SubscribeReasonCode::Failure,
                        }));
                        continue;
                    }
                };
                codes.push(None);
                // [MQTT-3.8.4-3] Subscribing again replaces the subscription and its QoS.
                let granted = filter.qos;
                let id = properties.as_ref().and_then(|p| p.id);
                self.outgoing.start_after(self.shared.outbox.last_routed());
                let existed = self.outgoing.grant(Subscription {
                    no_local: filter.nolocal,
                    as_published: filter.preserve_retain,
                    ..Subscription::new(&filter.path, granted, id)
                });
                granted_qos.push((filter.path.clone(), granted, id));
                // Retain Handling: 1 sends retained messages only for a new subscription, 2
                // never [MQTT-3.3.1-10, 3.3.1-11]; a shared subscription gets none, as
                // Mosquitto's, since its group's members would each get them.
                let send_retained = match filter.retain_forward_rule {
                    _ if filter.path.starts_with("$share/") => false,
                    RetainForwardRule::OnEverySubscribe => true,
                    RetainForwardRule::OnNewSubscribe => !existed,
                    RetainForwardRule::Never => false,
                };
                if !send_retained {
                    no_retained.push(filter.path.clone());
                }
                if let Some(from) = replay_from {
                    self.outgoing.replay(&filter.path, from);
                    replays += 1;
                    no_retained.push(filter.path.clone());
                }
                // Retained messages come from edgemq, after the SUBACK.
                forward.push(Filter {
                    path: names::filter_to_router(&filter.path).into_owned(),
                    qos: QoS::AtMostOnce,
                    retain_forward_rule: RetainForwardRule::Never,
                    ..filter
                });
            }
        }
        let pkid = subscribe.pkid;
        if forward.is_empty() {
            let return_codes = codes.into_iter().flatten().collect();
            self.write(Packet::SubAck(SubAck { pkid, return_codes }, None));
            self.send_new_sys(&new_sys);
        } else {
            let waiting = SubAckInProgress {
                codes,
                granted: granted_qos,
                new_sys,
                replays,
                no_retained,
            };
            self.subacks.insert(pkid, waiting);
            let subscribe = Subscribe {
                pkid,
                filters: forward,
            };
            to_router.push(Packet::Subscribe(subscribe, properties));
        }
    }

    /// Like retained messages: the current values of newly subscribed `$SYS` topics.
    fn send_new_sys(&mut self, filters: &[String]) {
        if !filters.is_empty() {
            let tree = Arc::new(sys::build(&self.shared.metrics));
            self.send_sys(&tree, Some(filters));
        }
    }

    pub(super) fn unsubscribe(
        &mut self,
        unsubscribe: Unsubscribe,
        properties: Option<UnsubscribeProperties>,
        to_router: &mut Vec<Packet>,
    ) {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        let mut forward = Vec::new();
        for filter in unsubscribe.filters {
            if is_sys_filter(&filter) {
                let before = self.sys_filters.len();
                self.sys_filters.retain(|f| *f != filter);
                reasons.push(if self.sys_filters.len() < before {
                    UnsubAckReason::Success
                } else {
                    UnsubAckReason::NoSubscriptionExisted
                });
            } else {
                let filter = replay::unsubscribed(&filter);
                self.outgoing.revoke(filter);
                reasons.push(UnsubAckReason::Success);
                forward.push(names::filter_to_router(filter).into_owned());
            }
        }
        let pkid = unsubscribe.pkid;
        if !forward.is_empty() {
            let unsubscribe = Unsubscribe {
                pkid,
                filters: forward,
            };
            to_router.push(Packet::Unsubscribe(unsubscribe, properties));
        }
        // The router answers only filters that were subscribed; its PINGRESP to this comes
        // back behind whatever it does answer, and is our cue for exactly one UNSUBACK.
        to_router.push(Packet::PingReq(PingReq));
        self.unsubacks.push_back((pkid, reasons));
    }

    /// Sends the `$SYS` topics matching the session's filters (or only `new` ones, retained).
    pub(super) fn send_sys(&mut self, tree: &SysTree, new: Option<&[String]>) {
        let filters = new.unwrap_or(&self.sys_filters).to_vec();
        for (name, value) in tree.iter() {
            if filters.iter().any(|f| topic::matches(f, name)) && self.may(name, Access::Read) {
                let publish = Publish::new(
                    bytes::Bytes::from(name.clone()),
                    value.clone(),
                    new.is_some(),
                );
                self.shared.metrics.sent.fetch_add(1, Relaxed);
                self.write(Packet::Publish(publish, None));
            }
        }
    }

    pub(super) fn finish_suback(&mut self, suback: SubAck, properties: Option<SubAckProperties>) {
        if suback.pkid == 0 {
            return; // The router's answer to a restored session's filters.
        }
        let Some(waiting) = self.subacks.remove(&suback.pkid) else {
            self.write(Packet::SubAck(suback, properties));
            return;
        };
        let SubAckInProgress {
            codes,
            granted,
            new_sys,
            replays,
            no_retained,
        } = waiting;
        // The router has every copy after what had been routed by now for the new filters.
        for _ in 0..replays {
            self.outgoing
                .replay_subscribed(self.shared.outbox.last_routed());
        }
        // The router subscribed at QoS 0; the client is told the QoS edgemq granted.
        let mut from_router = suback.return_codes.into_iter().zip(granted);
        let mut subscribed = Vec::new();
        let return_codes = codes
            .into_iter()
            .map(|code| {
                code.or_else(|| {
                    from_router
                        .next()
                        .map(|(code, (filter, granted, id))| match code {
                            SubscribeReasonCode::Success(_)
                            | SubscribeReasonCode::QoS0
                            | SubscribeReasonCode::QoS1
                            | SubscribeReasonCode::QoS2 => {
                                subscribed.push((filter, granted, id));
                                SubscribeReasonCode::Success(granted)
                            }
                            refused => refused,
                        })
                })
                .unwrap_or(SubscribeReasonCode::Failure)
            })
            .collect();
        let suback = SubAck {
            pkid: suback.pkid,
            return_codes,
        };
        self.write(Packet::SubAck(suback, properties));
        self.send_new_sys(&new_sys);
        for (filter, granted, id) in subscribed {
            if no_retained.contains(&filter) {
                continue;
            }
            for (topic, kept) in self.shared.retained.matching(shared_filter(&filter)) {
                self.outgoing.retained(topic, kept, granted, id);
            }
        }
    }
}
