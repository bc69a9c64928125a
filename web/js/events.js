// SPDX-License-Identifier: Apache-2.0
// events.js - every event accord tells people about, in the words of the
// person it is for (Settings: which mails I get) and of a lead looking at a
// delivery that failed (Notices). `role`: who may turn its mail off; none for
// what is always sent.
export const EVENTS = [
  { type: 'review.claimed', mine: 'An assessor started reviewing my submission', about: 'Review started', role: 'earner' },
  { type: 'submission.result', mine: 'My result is ready', about: 'Result ready', role: 'earner' },
  { type: 'award.issued', mine: 'I earned a badge', about: 'Badge earned', role: 'earner' },
  { type: 'award.revoked', mine: 'A badge of mine was revoked', about: 'Badge revoked', role: 'earner' },
  { type: 'submission.queued', mine: 'Reviews are waiting for me (a digest, not one mail each)', about: 'Reviews waiting (digest)', role: 'assessor' },
  { type: 'review.lease_expiring', mine: 'My time on a review is running out', about: 'Review time running out', role: 'assessor' },
  { type: 'assessor.recalibration_needed', mine: 'I need to recalibrate', about: 'Recalibration needed', role: 'assessor' },
  { type: 'assessor.qualification_regained', mine: 'I am qualified again', about: 'Qualified again', role: 'assessor' },
  { type: 'adjudication.waiting', mine: 'Two scores disagree and need an adjudication', about: 'Adjudication waiting', role: 'lead' },
  { type: 'submission.overdue', mine: 'A submission is past its turnaround target', about: 'Submission overdue', role: 'lead' },
  { type: 'routing.peer_paused', mine: 'Peer review of a credential was paused', about: 'Peer review paused', role: 'lead' },
  { type: 'routing.peer_resumed', mine: 'Peer review of a credential resumed', about: 'Peer review resumed', role: 'lead' },
  { type: 'invitation.created', about: 'Invitation' },
];

// What an event was about, in a lead's words (its type when unknown).
export function aboutEvent(type) {
  const e = EVENTS.find((x) => x.type === type);
  return e ? e.about : type;
}
