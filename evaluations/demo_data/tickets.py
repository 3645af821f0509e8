"""A deterministic demo suite: route a customer support ticket to one of five queues.

Each case is a short customer message whose expected output is its queue. A ticket goes to the queue
of what the customer needs done, not of the words it uses: a model can learn this from a few hundred
examples but cannot guess it reliably from the label names alone.

- ``refunds``   - the customer asks for money back (a refund, a reversed charge, "my money back").
                  This wins over everything else: a duplicate charge, a parcel that never came, a
                  device that broke, a week locked out - if they want the money back, it is a refund.
- ``access``    - getting in and who may get in: passwords, two-factor codes, locked accounts, single
                  sign-on, being logged out, invites and permissions, the login email; also when an
                  error code is shown, or when they only wanted to sign in to fetch an invoice.
- ``billing``   - paying, without asking for money back: invoices, receipts, cards, plans and prices,
                  a charge they do not recognise, a payment that fails with an error code.
- ``logistics`` - parcels: delivery, tracking, carriers, addresses, missing or wrong items, exchanges
                  and return labels, even when the tracking page shows an error or they paid extra for
                  express delivery.
- ``technical`` - a product or app that does not work: crashes, error codes, sync, firmware, even on a
                  paid plan, a device delivered recently or a replacement.

Templates tagged ``ambiguous`` mention the vocabulary of another queue on purpose (a refund request
that mentions a charge, a login failure with an error code, a late parcel paid for with express
shipping); the others are ``plain``.

``generate`` returns case dicts in the JSON Lines suite format (``id``, ``input``, ``expected``,
``split``, ``tags``) and depends only on its arguments: one ``random.Random(seed)``, lists (never sets)
and no ``hash()``.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

LABELS = ("billing", "technical", "logistics", "access", "refunds")

# Per label: (template, ambiguous?). Placeholders are filled from SLOTS below; a placeholder used twice
# in one template gets the same value, and "<slot>2" (city2, order2, product2) differs from "<slot>".
TEMPLATES: dict[str, list[tuple[str, bool]]] = {
    "billing": [
        ("Can you send me a VAT invoice for the {plan} payment I made {date}?", False),
        ("My {card} expires next month. How do I update the card on file?", False),
        ("Why did my {plan} go up to {amount} a month? Nobody told me about a price change.", False),
        ("I'd like to switch the {plan} from monthly to annual billing. Do I pay the difference now?", False),
        (
            "The receipt for order {order} shows the wrong company name. Please reissue it to {company}.",
            False,
        ),
        ("Is there a discount on the {plan} for nonprofits or schools?", False),
        ("A charge of {amount} showed up on my statement {date} and I don't recognise it. What is it?", True),
        ("Payment keeps failing with error {pay_error} when I try to renew the {plan}.", True),
        ("Can I pay for the {plan} by bank transfer instead of with my {card}?", False),
        ("Please add our tax ID {tax_id} to all future invoices.", False),
        ("We're billed for {seats} seats but only {fewer_seats} people use it. Can you adjust that?", False),
        ("When is the next payment for my {plan} taken? I want to make sure my {card} has funds.", False),
        ("Do your prices include sales tax for customers in {city}?", False),
        ("I got an email saying my payment of {amount} was declined, but my bank says all is fine.", True),
        ("How do I downgrade from the {plan} to the free tier before the next billing date?", False),
        ("Please send our invoices to {email} instead of my personal address.", True),
        ("Can I split the {amount} for order {order} across two cards?", False),
        ("The {app} says my trial is about to end. How much will I be charged after that?", True),
        ("Checkout shows error {pay_error} every time I enter my {card}.", True),
    ],
    "technical": [
        ("My {product} keeps disconnecting from the Wi-Fi every few minutes.", False),
        ("The {app} crashes as soon as I open {feature} on my {device}.", False),
        ("I get error {tech_error} whenever I try to {action}.", False),
        ("The firmware update for my {product} has been stuck at {percent}% for an hour.", False),
        ("{feature_cap} stopped working on my {device} after the last update.", False),
        ("My {product} won't turn on anymore, even after charging it overnight.", False),
        ("Changes I made on my {device} {date} never showed up in the {app}. Sync seems stuck.", False),
        ("The {product} you delivered {date} won't pair over Bluetooth; it shows code {tech_error}.", True),
        ("CSV exports started coming out empty {date}. Is something broken on your side?", False),
        ("The reports page just spins forever in {browser}.", False),
        ("Notifications from the {app} don't arrive on my {device} even though they are enabled.", False),
        ("My {product} makes a clicking noise and then switches itself off.", False),
        ("How do I factory reset the {product}? It freezes on the start screen.", False),
        ("Since version {version} the {app} drains my {device} battery in two hours.", False),
        ("Step tracking on my {wearable} resets to zero every morning.", True),
        ("The replacement {product} you shipped me has the same fault: it reboots every few minutes.", True),
        ("Video calls in the {app} freeze after about ten seconds on my {device}.", False),
        ("I paid for the {plan} but the {app} crashes with {tech_error} when I open {feature}.", True),
    ],
    "logistics": [
        ("Where is my order {order}? The tracking last updated {date}.", False),
        ("{carrier} says order {order} was delivered, but there is nothing at my door.", False),
        ("Can I change the delivery address for order {order} to {city}? It hasn't shipped yet.", False),
        ("My parcel, shipped {date}, has been sitting at the {carrier} depot in {city} for days.", False),
        ("The box for order {order} arrived crushed and the {product} inside is missing.", False),
        ("Do you ship to {country}, and how long does delivery usually take?", False),
        ("I ordered the {product2} but received the {product} instead. Order {order}.", False),
        ("Can I collect order {order} from your store in {city} instead of having it delivered?", False),
        ("The tracking link for order {order} shows error {tech_error} on your website.", True),
        ("Please hold my deliveries for the next {days} days; I'll be away.", False),
        ("Only one of the {count} boxes in order {order} arrived. Are the others coming separately?", False),
        ("{carrier} left a note saying they need a customs form for order {order}. What do I do?", False),
        ("Could you send me a return label for the {product}? I want to exchange it for another size.", True),
        ("Order {order} shows as delivered in {city}, but I live in {city2}.", False),
        ("Can you combine orders {order} and {order2} into one shipment?", False),
        ("The courier keeps rescheduling order {order}. Can I pick a delivery time slot?", False),
        (
            "I paid {amount} for express delivery on order {order}; it's still not here after {days} days.",
            True,
        ),
        ("The {app} says order {order} is out for delivery, but {carrier} has no record of it.", True),
    ],
    "access": [
        ("I can't log in. The password reset email never arrives at {email}.", False),
        ("My account got locked after too many attempts on my {device}. How do I unlock it?", False),
        ("I lost my {phone} and can't get the two-factor code anymore.", False),
        ("Signing in on my {device} fails with error {auth_error} even though my password is right.", True),
        ("How do I give my colleague {name} admin rights in our workspace?", False),
        ("Single sign-on through {idp} stopped letting our team in this morning.", False),
        ("I need to change the email I log in with from {email} to a new address.", False),
        ("Someone signed into my account from {city} {date}, and it wasn't me.", False),
        ("The invite link {name} sent me says it has expired.", False),
        ("Please remove {name}'s access; they left the company {date}.", False),
        ("I can't log in to download the invoice for our {plan}.", True),
        ("The {app} logs me out every few minutes on my {phone} and I have to sign in again.", True),
        ("Can I turn off two-factor authentication for everyone in our {plan} workspace?", False),
        ("After changing my password I'm stuck in a login loop in {browser}.", True),
        ('I\'m on the {plan} but get "permission denied" when I open the shared reports.', True),
        ("I forgot which email I used for the {plan}. Can you help me get back into my account?", False),
        ("The security code you text me takes {minutes} minutes to arrive and has expired by then.", False),
        ("Login page shows {auth_error} after I enter the code from my authenticator app.", True),
    ],
    "refunds": [
        ("I'd like a refund for order {order}; the {product} isn't what I expected.", False),
        ("I was charged {amount} twice {date}. Please refund the duplicate.", True),
        ("I cancelled my {plan} {date} but was still charged {amount}. I want that money back.", True),
        ("Order {order} never arrived. Please give me my money back instead of sending it again.", True),
        ("How long does a refund take to reach my {card}?", False),
        ("My {product} stopped working after {days} days. I don't want a replacement, just a refund.", True),
        ("You said the refund for order {order} was approved {date}, but I still don't see it.", False),
        ("Can I get my money back for the unused months of my {plan}?", False),
        ("I sent the {product} back {days} days ago. When will the refund be processed?", False),
        ("Please reverse the {amount} charge I got {date}; I never agreed to the upgrade.", True),
        (
            "I was locked out for a week and couldn't use the {plan}. Please refund that month.",
            True,
        ),
        ("Can the refund for order {order} go to a different card? My {card} is closed.", False),
        ("The {product} arrived broken. I'd rather have a refund than a replacement.", True),
        ("Do you refund the shipping cost when I send back my {product}?", False),
        ("My son bought the {plan} by accident {date}. Can I get the {amount} back?", False),
        ("I only got {amount} back but I paid more than that. Can you refund the rest?", False),
        ("Please refund the express shipping fee on order {order}; it arrived a week late.", True),
        ("The {app} crashed during checkout and I paid {amount} for nothing. I want it refunded.", True),
    ],
}

GREETINGS = ["", "", "", "Hi,", "Hello,", "Hi there,", "Hey,", "Good morning,", "Hi team,"]
CLOSINGS = ["", "", "", "Thanks.", "Thanks!", "Thank you.", "Please help.", "Any update?", "Cheers."]

PRODUCTS = [
    "Aria X2 headset",
    "Nimbus 4 router",
    "Pulse smartwatch",
    "Orbit robot vacuum",
    "Lumen desk lamp",
    "Vega 12 tablet",
    "Halo doorbell camera",
    "Tempo fitness band",
    "Echo Dot speaker",
]
PHONES = ["phone", "iPhone", "iPhone 13", "Pixel 7", "Galaxy S22", "Android phone"]
WEARABLES = ["Pulse smartwatch", "Tempo fitness band", "Pulse 2 smartwatch"]
DEVICES = [
    "iPhone 13",
    "Pixel 7",
    "Galaxy S22",
    "MacBook Air",
    "Windows 11 laptop",
    "iPad mini",
    "Chromebook",
]
APPS = ["app", "mobile app", "companion app", "new app", "Homebase app"]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
FEATURES = ["calendar sync", "dark mode", "offline mode", "the search bar", "photo upload", "CSV export"]
ACTIONS = ["upload a photo", "save a draft", "export my data", "print a report", "add a new device"]
PLANS = ["Pro plan", "Team plan", "Basic plan", "Family plan", "Premium plan", "annual plan"]
CARDS = ["Visa card", "Mastercard", "PayPal account", "debit card", "Amex card"]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "DPD", "Canada Post"]
CITIES = ["Leeds", "Denver", "Lyon", "Austin", "Rotterdam", "Porto", "Calgary", "Dublin", "Tampa"]
COUNTRIES = ["Canada", "Norway", "Mexico", "Ireland", "Japan", "New Zealand", "Portugal"]
COMPANIES = ["Brightline Ltd", "Kessler & Co", "Northwind GmbH", "Osprey Labs", "Maple Dental LLC"]
NAMES = ["Priya", "Tom", "Ana", "Marcus", "Lena", "Kenji", "Fatima", "Ollie"]
DOMAINS = ["gmail.com", "outlook.com", "acme.io", "northwind.de", "fastmail.com"]
IDPS = ["Okta", "Azure AD", "Google Workspace", "OneLogin"]
DATES = [
    "yesterday",
    "last Tuesday",
    "two days ago",
    "last week",
    "on Monday",
    "on March 3",
    "on May 21",
    "on June 14",
    "on October 2",
]
DAYS = ["3", "5", "6", "10", "12", "14", "20"]
COUNTS = ["two", "three", "four"]
CURRENCIES = ["$", "$", "€", "£"]
TECH_ERRORS = ["E-1042", "ERR_SYNC_17", "0x80070005", "503", "E47", "NET-09", "FW-221"]
AUTH_ERRORS = ["AUTH-401", "403", "SSO-12", "LOGIN_LOCKED", "MFA-07", "AUTH-419"]
PAY_ERRORS = ["PAY-402", "card_declined", "3DS-51", "BIL-22", "PAY-110"]


def _amount(rng: random.Random, values: dict[str, str]) -> str:
    return f"{rng.choice(CURRENCIES)}{rng.randint(5, 480)}.{rng.choice(['00', '99', '50', '49', '95'])}"


def _email(rng: random.Random, values: dict[str, str]) -> str:
    return f"{rng.choice(NAMES).lower()}{rng.choice(['', '.k', '88', '_w'])}@{rng.choice(DOMAINS)}"


def _version(rng: random.Random, values: dict[str, str]) -> str:
    return f"{rng.randint(3, 6)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"


def _tax_id(rng: random.Random, values: dict[str, str]) -> str:
    return rng.choice(["GB", "DE", "FR", "IE"]) + "".join(rng.choice(string.digits) for _ in range(9))


def _order(rng: random.Random, values: dict[str, str]) -> str:
    return rng.choice(["#", "#", "A-", "W"]) + str(rng.randint(10000, 99999))


def _seats(rng: random.Random, values: dict[str, str]) -> str:
    return str(rng.randint(6, 40))


def _fewer_seats(rng: random.Random, values: dict[str, str]) -> str:
    return str(rng.randint(2, int(values["seats"]) - 2))


def _choice(options: list[str]) -> Callable[[random.Random, dict[str, str]], str]:
    return lambda rng, values: rng.choice(options)


SLOTS: dict[str, Callable[[random.Random, dict[str, str]], str]] = {
    "action": _choice(ACTIONS),
    "amount": _amount,
    "app": _choice(APPS),
    "auth_error": _choice(AUTH_ERRORS),
    "browser": _choice(BROWSERS),
    "card": _choice(CARDS),
    "carrier": _choice(CARRIERS),
    "city": _choice(CITIES),
    "company": _choice(COMPANIES),
    "count": _choice(COUNTS),
    "country": _choice(COUNTRIES),
    "date": _choice(DATES),
    "days": _choice(DAYS),
    "device": _choice(DEVICES),
    "email": _email,
    "feature": _choice(FEATURES),
    "fewer_seats": _fewer_seats,
    "idp": _choice(IDPS),
    "name": _choice(NAMES),
    "order": _order,
    "pay_error": _choice(PAY_ERRORS),
    "minutes": _choice(["5", "10", "15", "20"]),
    "percent": lambda rng, values: str(rng.randint(12, 97)),
    "phone": _choice(PHONES),
    "plan": _choice(PLANS),
    "product": _choice(PRODUCTS),
    "seats": _seats,
    "tax_id": _tax_id,
    "tech_error": _choice(TECH_ERRORS),
    "wearable": _choice(WEARABLES),
    "version": _version,
}

_FORMATTER = string.Formatter()


def _fill(template: str, rng: random.Random) -> str:
    values: dict[str, str] = {}
    for _, field, _, _ in _FORMATTER.parse(template):
        if field is None or field in values:
            continue
        if field.endswith("_cap"):
            base = field[: -len("_cap")]
            value = values.get(base) or SLOTS[base](rng, values)
            values[field] = value[:1].upper() + value[1:]
        elif field.endswith("2"):
            base = field[:-1]
            first = values.get(base) or SLOTS[base](rng, values)
            values.setdefault(base, first)
            value = SLOTS[base](rng, values)
            while value == first:
                value = SLOTS[base](rng, values)
            values[field] = value
        else:
            values[field] = SLOTS[field](rng, values)
    return template.format(**values)


def _after_greeting(body: str, template: str) -> str:
    """The body with its first letter in lower case, as after "Hi," (not "I", "CSV", "UPS", a slot)."""
    first = body.split(" ", 1)[0]
    from_slot = template.startswith("{") and not template.split("}", 1)[0].endswith("_cap")
    if from_slot or first == "I" or first.startswith("I'") or first[1:2].isupper():
        return body
    return body[:1].lower() + body[1:]


def _ticket(template: str, rng: random.Random) -> tuple[str, str]:
    """A ticket's text, and the message inside it (lower case, without greeting and sign-off)."""
    greeting, body, closing = rng.choice(GREETINGS), _fill(template, rng), rng.choice(CLOSINGS)
    message = body.lower().rstrip(".")
    if greeting:
        body = _after_greeting(body, template)
    text = " ".join(p for p in (greeting, body, closing) if p)
    if rng.random() < 0.1:  # some customers type in lower case without a final full stop
        text = text.lower().rstrip(".")
    return text, message


def _balanced_labels(rng: random.Random, count: int) -> list[str]:
    labels = [LABELS[i % len(LABELS)] for i in range(count)]
    rng.shuffle(labels)
    return labels


def generate(seed: int = 7, train: int = 300, test: int = 100) -> list[dict]:
    """The ticket-routing suite: ``train`` then ``test`` cases, labels balanced within each split.

    The same arguments always give the same list. No two cases share a message, even with a different
    greeting, sign-off or case, so the test split never repeats a train ticket.
    """
    rng = random.Random(seed)
    # Each label cycles through its templates in a shuffled order, so every template is used about
    # equally often and both splits draw on all of them.
    queues: dict[str, list[int]] = {label: [] for label in LABELS}
    seen: dict[str, None] = {}  # messages used so far (a dict: ordered, unlike a set)
    cases: list[dict] = []
    for split, count in (("train", train), ("test", test)):
        for label in _balanced_labels(rng, count):
            templates = TEMPLATES[label]
            for _attempt in range(200):
                if not queues[label]:
                    queues[label] = list(range(len(templates)))
                    rng.shuffle(queues[label])
                template, ambiguous = templates[queues[label].pop()]
                text, message = _ticket(template, rng)
                if message not in seen:
                    break
            else:  # pragma: no cover - only for sizes far beyond what the templates can vary
                raise ValueError(f"cannot make {count} distinct {label!r} tickets; ask for fewer cases")
            seen[message] = None
            cases.append(
                {
                    "id": f"t-{len(cases) + 1:04d}",
                    "input": text,
                    "expected": label,
                    "split": split,
                    "tags": ["ambiguous" if ambiguous else "plain"],
                    # the routing guide's section on the queue (demo_data/knowledge/): recall@k, MRR
                    "metadata": {"gold_docs": [label]},
                }
            )
    return cases
