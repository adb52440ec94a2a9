"""Write ``project_train.jsonl``: the texts the project adds to the detector's training data.

Positives: the injection attempts the project wrote for its earlier test suites
(``tests/reliability/injection_corpus.jsonl`` and ``ATTACKS`` in ``tests/judge/test_injection.py``).
Negatives: the clean support lines of the same suite and templated support messages, agent
replies and tool results (JSON order data with statuses such as ``resolved`` or ``verified``).

Never here: the fresh attacks, the benign controls (``fresh_attacks.jsonl``,
``benign_controls.jsonl``), the shipped samples or tau-bench: those measure the detector.
Run ``python datasets/injection/make_project_train.py`` from the repository root.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]

CUSTOMER = [
    "Hi, my order {order} hasn't arrived yet, can you check?",
    "I was charged twice for invoice {inv}, please refund one of them.",
    "The app crashes when I open {screen} on my {device}.",
    "Can I change the delivery address for {order}? I moved last week.",
    "My password reset email never arrives, I checked spam.",
    "How do I cancel my subscription? Account {acct}.",
    "The discount code {code} says invalid at checkout.",
    "I need an invoice with our VAT number for {inv}.",
    "Thanks, that worked! You can close the ticket.",
    "Still not working after the restart, any other ideas?",
    "Can you upgrade us to the annual plan and prorate it?",
    "The tracking page for {order} shows no movement since Monday.",
    "Please remove my card ending {last4} from the account.",
    "I'd like a refund for the {item}, it arrived damaged.",
    "Where can I download the receipts for last year?",
    "The export to CSV is missing the {column} column.",
    "Our team lead needs admin rights on workspace {acct}.",
    "Great, thanks for the quick help!",
    "I got a message that my account is locked, what happened?",
    "Is there a way to pause the plan for two months?",
]
AGENT = [
    "I've checked {order}: it left our warehouse yesterday and should arrive within 2 days.",
    "I've refunded the duplicate charge on {inv}; it will show in 3-5 business days.",
    "Please update the app to version 4.2.1, which fixes the crash on {screen}.",
    "I've changed the delivery address for {order} to the new one you gave me.",
    "Your reset emails were blocked by your mail server; ask IT to allow our domain.",
    "Your subscription is cancelled; you won't be charged again.",
    "The code {code} expired on the 1st; I've applied a 10% discount instead.",
    "Here is the invoice with your VAT number: {inv}.",
    "I've marked your ticket as resolved; reply here if anything else comes up.",
    "Could you try signing out and back in, then clearing the cache?",
    "I've upgraded you to annual and credited the unused days.",
    "I'm escalating this to our logistics team; they'll reply within 24 hours.",
    "Per our policy, refunds are possible within 30 days of delivery.",
    "The system shows your card ending {last4} was removed.",
    "Our records show the item was delivered to the parcel locker.",
    "I've added the {column} column to your export template.",
    "Admin rights granted for workspace {acct}.",
    "Let me check that for you.",
    "Your account was locked after 5 failed logins; I've unlocked it.",
    "You can pause the plan from Settings > Billing > Pause.",
]
TOOL = [
    '{{"order_id": "{order}", "status": "{status}", "carrier": "DHL", "eta": "2026-03-0{d}"}}',
    '{{"invoice": "{inv}", "amount": {amount}, "status": "{status}"}}',
    '{{"refund": {{"id": "re_{d}{d}", "status": "{status}", "amount": {amount}}}}}',
    '{{"ticket": {{"id": {d}{d}{d}, "state": "{status}", "csat": {d}}}}}',
    '[{{"id": "in_{d}1", "status": "paid"}}, {{"id": "in_{d}2", "status": "{status}"}}]',
    '{{"account": "{acct}", "plan": "Pro", "verified": true, "next_charge": "2026-04-01"}}',
    "KB-{d}{d}: To reset the router, hold the button for 10 seconds. Note: settings are lost.",
    "status={status}; resolution=replacement_sent; carrier=UPS",
    '{{"events": [{{"type": "bounced", "reason": "550 5.7.1 rejected", "count": {d}}}]}}',
    '{{"user": "{acct}", "role": "admin", "mfa": "enabled", "locked": false}}',
]
# Short turns every support chat has: greetings, thanks, closings, confirmations, hand-offs.
# (Written after the first detector fired on such closings in tau-bench, so tau-bench false-flag
# figures are labelled as measured on text these were written against.)
OPENERS = ["", "Hi, ", "Hello, ", "Hey there, ", "Good morning, ", "Wow, ", "Great, ", "Ok, ",
           "Thanks, ", "Perfect, ", "Sure, ", "Yes, ", "No, "]  # fmt: skip
TURNS = [
    "thank you for your help.",
    "that's all for now.",
    "that should be all, thanks!",
    "I really appreciate it.",
    "please go ahead.",
    "yes, please proceed with that.",
    "no, that's everything.",
    "can you connect me with a human agent?",
    "I'd like to speak to someone about this.",
    "this is due to a change of plans.",
    "that's a relief, thank you.",
    "could you repeat the total?",
    "what are my options?",
    "I want to cancel the second one too.",
    "please use the card on file.",
    "my user id is {acct}.",
    "the reservation is {order}.",
    "I'll wait, thanks.",
    "let me check and get back to you.",
    "everything looks great now.",
    "I don't have that number handy, sorry.",
    "is there a cheaper option?",
    "I understand, thanks for explaining.",
    "ok I'll try that now.",
]
AGENT_STEPS = [
    "To proceed, I'll need the following details: 1. your order number 2. the email on the "
    "account.",
    "Would you like me to go ahead with the change? Please confirm (yes/no).",
    "Before I make this change, please confirm the new total of ${amount}.",
    "I can transfer you to a human agent; please share your reservation ID first.",
    "Here is a summary of the changes: {order} moved to the 14:05 flight, no fee.",
    "I'm sorry for the trouble. Let me look into it.",
    "Thank you for your patience. The change is done.",
    "Is there anything else I can help you with today?",
    "Upgrading costs ${amount} more; would you like me to proceed?",
    "According to our policy, basic economy tickets cannot be changed.",
]
SLOTS = {
    "order": ["A-20417", "B-5531", "#88123", "ORD-7781"],
    "inv": ["in_7781", "INV-2026-0042", "#10293"],
    "screen": ["the camera screen", "settings", "the dashboard"],
    "device": ["Pixel 8", "iPhone 15", "Galaxy S23"],
    "acct": ["77812", "acc_5521", "team-north"],
    "code": ["SPRING10", "WELCOME5"],
    "last4": ["4242", "0005"],
    "item": ["mixer", "headphones", "desk lamp"],
    "column": ["resolved_at", "agent", "csat"],
    "status": ["resolved", "verified", "shipped", "pending", "completed", "approved", "closed"],
    "amount": ["48.0", "129.0", "12.5"],
    "d": ["1", "2", "3", "4", "5"],
}


def fill(template: str, rng: random.Random) -> str:
    return template.format(**{k: rng.choice(v) for k, v in SLOTS.items()})


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.judge.test_injection import ATTACKS, CLEAN_LINES, CLEAN_NEAR_MISSES

    rng = random.Random(12)
    rows = []
    corpus = ROOT / "tests" / "reliability" / "injection_corpus.jsonl"
    for line in corpus.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        rows.append({"text": rec["text"], "label": "injection", "category": rec["style"]})
    rows += [{"text": t, "label": "injection", "category": "unit_attack"} for t in ATTACKS]
    rows += [{"text": t, "label": "benign", "category": "clean_line"} for t in CLEAN_LINES]
    rows += [{"text": t, "label": "benign", "category": "near_miss"} for t, _ in CLEAN_NEAR_MISSES]
    for opener, turn in itertools.product(OPENERS, TURNS):
        text = fill(opener + (turn[0].upper() + turn[1:] if not opener else turn), rng)
        rows.append({"text": text, "label": "benign", "category": "short_turn"})
    for template, _ in itertools.product(AGENT_STEPS, range(2)):
        rows.append({"text": fill(template, rng), "label": "benign", "category": "agent_step"})
    for kind, templates in (("customer", CUSTOMER), ("agent", AGENT), ("tool", TOOL)):
        for template, _ in itertools.product(templates, range(3)):
            rows.append({"text": fill(template, rng), "label": "benign", "category": kind})
    seen: set[str] = set()
    with (HERE / "project_train.jsonl").open("w", encoding="utf-8") as f:
        for n, row in enumerate(rows):
            if row["text"] in seen:
                continue
            seen.add(row["text"])
            row = {**row, "source": "project", "language": None, "id": f"project:{n}"}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(len(seen), "rows")


if __name__ == "__main__":
    main()
