//! A container's image, as the kubelet's image puller handles it: `imagePullPolicy` decides
//! whether to pull (`Always`; `IfNotPresent` when missing; `Never` waits in
//! `ErrImageNeverPull`); a failed pull waits in `ErrImagePull`, then `ImagePullBackOff` with a
//! doubling delay; every step is an event worded as Kubernetes words it.

use super::*;
use crate::runtime::ImageReady;

/// What the policy says to do about an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PullDecision {
    Use,
    Pull,
    /// Missing, and the policy forbids pulling.
    NeverPull,
}

/// The image puller's decision (`shouldPullImage`): `policy` as defaulted by the API server.
pub(super) fn decide(policy: &str, present: bool) -> PullDecision {
    match (policy, present) {
        ("Always", _) => PullDecision::Pull,
        ("Never", true) | (_, true) => PullDecision::Use,
        ("Never", false) => PullDecision::NeverPull,
        (_, false) => PullDecision::Pull,
    }
}

/// The delay after a failed pull: the restart backoff's base, doubling up to its maximum.
pub(super) fn next_pull_delay(prev: Duration, base: Duration, max: Duration) -> Duration {
    if prev.is_zero() {
        base
    } else {
        prev.saturating_mul(2).min(max.max(base))
    }
}

impl Worker {
    /// Make the `i`-th container's image available; `None` while it is not (the container then
    /// waits with the reason, and a retry is scheduled).
    pub(super) async fn ensure_image(
        &mut self,
        i: usize,
        spec: &ApiContainer,
    ) -> Option<ImageReady> {
        let image = spec.image.clone();
        let name = spec.name.clone();
        if !self.ctx.runtime.isolated() {
            // The process runtime has no images: `image` is only recorded.
            self.event_normal(
                Some(&name),
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            );
            return self.ctx.runtime.image_status(&image).await.ok().flatten();
        }
        let now = Instant::now();
        let c = &mut self.containers[i];
        if let (Some(error), Some(at)) = (c.pull_error.clone(), c.pull_retry_at)
            && now < at
        {
            let msg = format!("Back-off pulling image {image:?}: ErrImagePull: {error}");
            let first = !matches!(&c.current, Current::Waiting { reason, .. } if reason == "ImagePullBackOff");
            c.set_waiting("ImagePullBackOff", msg);
            c.retry_at = Some(at);
            self.wake_at(at);
            if first {
                self.event_normal(
                    Some(&name),
                    "BackOff",
                    format!("Back-off pulling image {image:?}"),
                );
                self.event_warning(Some(&name), "Failed", "Error: ImagePullBackOff".into());
            }
            return None;
        }
        let present = match self.ctx.runtime.image_status(&image).await {
            Ok(p) => p,
            Err(e) => {
                self.container_error(
                    i,
                    "ErrImageInspect",
                    format!("Failed to inspect image {image:?}: {e}"),
                );
                return None;
            }
        };
        let policy = if spec.image_pull_policy.is_empty() {
            "IfNotPresent"
        } else {
            spec.image_pull_policy.as_str()
        };
        match (decide(policy, present.is_some()), present) {
            (PullDecision::Use, Some(ready)) => {
                self.event_normal(
                    Some(&name),
                    "Pulled",
                    format!("Container image {image:?} already present on machine"),
                );
                Some(ready)
            }
            (PullDecision::NeverPull, _) | (PullDecision::Use, None) => {
                let msg =
                    format!("Container image {image:?} is not present with pull policy of Never");
                self.event_warning(Some(&name), "ErrImageNeverPull", msg.clone());
                self.container_error(i, "ErrImageNeverPull", msg);
                None
            }
            (PullDecision::Pull, _) => {
                self.event_normal(Some(&name), "Pulling", format!("Pulling image {image:?}"));
                tracing::info!(pod = %self.key(), container = %name, %image, "pulling image");
                match self.ctx.runtime.pull_image(&image).await {
                    Ok(ready) => {
                        let took = ready.pulled_in.unwrap_or_default();
                        self.event_normal(
                            Some(&name),
                            "Pulled",
                            format!(
                                "Successfully pulled image {image:?} in {} ({} including waiting)",
                                go_duration(took),
                                go_duration(took)
                            ),
                        );
                        let c = &mut self.containers[i];
                        c.pull_error = None;
                        c.pull_retry_at = None;
                        c.pull_delay = Duration::ZERO;
                        Some(ready)
                    }
                    Err(e) => {
                        tracing::warn!(pod = %self.key(), container = %name, %image, error = %e, "cannot pull image");
                        self.event_warning(
                            Some(&name),
                            "Failed",
                            format!("Failed to pull image {image:?}: {e}"),
                        );
                        self.event_warning(Some(&name), "Failed", "Error: ErrImagePull".into());
                        let (base, max) =
                            (self.ctx.restart_backoff_base, self.ctx.restart_backoff_max);
                        let c = &mut self.containers[i];
                        c.pull_delay = next_pull_delay(c.pull_delay, base, max);
                        let at = Instant::now() + c.pull_delay;
                        c.pull_error = Some(e.clone());
                        c.pull_retry_at = Some(at);
                        c.set_waiting("ErrImagePull", e);
                        // Look again soon: the container then shows ImagePullBackOff until
                        // the next pull is due.
                        let soon = Instant::now() + c.pull_delay.min(Duration::from_secs(1));
                        c.retry_at = Some(soon);
                        self.wake_at(soon);
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy() {
        use PullDecision::*;
        assert_eq!(decide("Always", true), Pull);
        assert_eq!(decide("Always", false), Pull);
        assert_eq!(decide("IfNotPresent", true), Use);
        assert_eq!(decide("IfNotPresent", false), Pull);
        assert_eq!(decide("Never", true), Use);
        assert_eq!(decide("Never", false), NeverPull);
    }

    #[test]
    fn pull_backoff_doubles_to_the_max() {
        let (b, m) = (Duration::from_secs(10), Duration::from_secs(300));
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..7 {
            d = next_pull_delay(d, b, m);
            seen.push(d.as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
    }
}
