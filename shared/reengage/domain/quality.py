"""The gate every follow-up passes before it is sent, AI-written or template (plain Python, no AWS).

The model writes prose only; reengage adds the greeting, the one call-to-action link from the
knowledge base, the signature and the footer. So the gate does not filter links against an
allow-list: any link, domain, address, handle, phone number, signature, footer or placeholder in
the prose rejects it. Every check runs on the text after NFKC normalisation with invisible and
bidi control characters removed (their presence alone rejects a draft), so a full-width `＠`, a
zero-width space inside `Re:` or `evil。com` are read for what they show. Numbers, prices and
claims must come from the knowledge base; the stage's meaning (acknowledges the earlier message,
says it is the last one, promises no more contact) is checked independently of the model's own
flags. The same text checks decide whether a lead field may be repeated at all (`LeadFacts`).

Detectors: tldextract with its bundled public-suffix snapshot (domains; no network fetch),
`phonenumbers` (phone numbers in any national format), and the patterns below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from reengage.domain.clock import InvalidTimeError, parse_time
from reengage.domain.companies import is_public_mail_domain, registrable_domain
from reengage.domain.knowledge import KnowledgeBase
from reengage.domain.leads import FollowUpStage, Lead, days_since
from reengage.domain.names import display_company, parse_person
from reengage.domain.text import CONTROL_CHARACTERS, CONTROL_IN_BODY, invisible_characters, normalise

SUBJECT_LIMITS = (3, 90)  # characters
BODY_WORD_LIMITS = (40, 260)
COMPANY_CAP = 60

# --- links, addresses, phone numbers -------------------------------------------------------------
_SCHEME = re.compile(
    r"\b(?:https?|ftps?|sftp|file|mailto|tel|sms|callto|skype|whatsapp|tg|viber|javascript|data|ipfs|magnet)\s*:"
    r"|\b[a-z][a-z0-9+.-]{1,15}://|\bwww\d?\s*\.",
    re.IGNORECASE,
)
_IP_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|\[[0-9a-f:]{4,}\]", re.IGNORECASE)
# "example dot com", "example[.]com", "example (dot) com", "example . com": read as a dot.
_OBFUSCATED_DOT = re.compile(
    r"\s*[\[\(\{<]\s*(?:\.|dot|punkt|point|punto|ponto)\s*[\]\)\}>]\s*|\s+(?:dot|DOT|Dot|punkt|punto)\s+|\s+\.\s*"
    r"|\s*[·•∙⋅‧・]\s*|\.\s+(?=(?:com|net|org|io|co|ai|app|dev|ru|cn|me|ly|info|biz|xyz|uk|de)\b(?![-'’]))"
)
_DOMAIN_CANDIDATE = re.compile(r"(?<![\w@.-])((?:[\w-]+\.)+[\w-]{2,})\.?(?![\w-])")
# Names reserved for documentation and private use: not in the public suffix list, still links.
_RESERVED_SUFFIXES = frozenset({"example", "test", "invalid", "localhost", "local", "internal", "onion", "lan", "corp"})
_AT_SIGN = re.compile(r"@|\(\s*at\s*\)|\[\s*at\s*\]|\{\s*at\s*\}|<\s*at\s*>", re.IGNORECASE)
_PATH_AFTER_SUFFIX = re.compile(r"\b(?:com|net|org|io|co|ai|ly|me|ru|cn|info|biz|xyz|app|dev|gl|gg|to)\s*/\s*\w")
# A run of spoken digits ("seven seven zero zero, nine double zero, one two three", "oh four one five,
# triple five"): counted as the digits it says; seven or more read as a phone number.
_DIGIT_RUN = re.compile(
    r"\b(?:(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple|hundred|\d{1,4})(?:[\s,.;-]+|$)){4,}",
    re.IGNORECASE,
)
_DIGITS_SAID = {"double": 1, "triple": 2, "hundred": 2}
_PHONE_LIKE = re.compile(r"(?:\+|\b00)\d[\d\s().-]{6,}\d|\(?\b\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}\b")
_YEAR_RANGE = re.compile(r"(?:19|20)\d\d\s*[-–/]\s*(?:19|20)?\d\d")
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "BR", "ES", "IT", "NL", "JP", "CN")
_CONTACT_LABEL = re.compile(
    r"^\s*(?:(?:tel|phone|mobile|mob|cell|fax|direct|whatsapp|signal|telegram|skype)\s*[.:]|[mtpew]\s*:)",
    re.IGNORECASE | re.MULTILINE,
)

# Routes around the one call-to-action link reengage adds: messengers, social DMs, texts, calls, "search for".
_OFF_CHANNEL = re.compile(
    r"\b(?:whats ?app|telegram|wechat|weixin|viber|skype|imessage|facetime|discord|snapchat|kakao ?talk|calendly|"
    r"doodle|hubspot meetings|zoom link|text me|sms me|dm me|dms?|direct message|message me|ping me|call me|ring me|"
    r"phone me|buzz me|give me a (?:call|ring|buzz|shout)|my (?:cell|mobile|mobile number|phone|number|direct line|"
    r"handle|username|profile|calendar|booking page)|search (?:for|up)|look (?:me|us|it) up|look up|"
    r"google (?:me|us|for|it)|just google|find me|add me|follow (?:me|us)|connect with me|under my name|"
    r"same name as|(?:on|via|over|through) (?:signal|linkedin|twitter|instagram|facebook|messenger|slack|"
    r"threads))\b",
    re.IGNORECASE,
)

# A cold follow-up never asks for a login, a password, bank or card details, or the lead's phone number.
_CREDENTIAL_ASK = re.compile(
    r"\b(?:log-?ins?|credentials?|passwords?|passcodes?|pin code|2fa|one-time code|verification code|otp|"
    r"user ?names? and password|bank(?:ing)? (?:details|info\w*|account\w*|log-?in)|sort code|account number|"
    r"card (?:number|details)|credit card|cvv|social security|ssn|tax id|date of birth|passport)\b|"
    r"\b(?:send|share|reply with|respond with|give me|confirm|provide|forward|text|email)\b(?:\s+(?:me|us|over))*"
    r"\s+(?:your|the)\s+(?:\w+\s+){0,2}?(?:numbers?|details|address|phone|mobile|cell|direct line|card|invoice)\b|"
    r"\bforward this to (?:your |the )?(?:finance|accounts?|billing|payroll|payments?)\b|\bfor payment\b",
    re.IGNORECASE,
)

# --- placeholders and markup ----------------------------------------------------------------------
_MARKUP_CHARACTERS = re.compile(r"[{}\[\]<>|*_\\~^`]|#(?=[^\W\d])")
_PLACEHOLDER = re.compile(
    r"%[A-Za-z_ ]{2,30}%|\$\{?[A-Za-z_]|\b[A-Z]{2,}_[A-Z_]+\b|\bX{3,}\b|\b(?:TODO|TBD|FIXME|INSERT)\b|lorem ipsum"
    r"|\b(?:first|last|full|company|contact|recipient|sender|business|your)[ _-]?name\b"
    r"|\(\s*(?:your |their |the |recipient'?s? |lead'?s? )?(?:name|company|title|role|date|city|industry|firm"
    r"|organi[sz]ation|business|product|pain point|benefit)\s*\)",
    re.IGNORECASE,
)
_PLACEHOLDER_CASED = re.compile(r"\b(?:FNAME|LNAME|NAME|COMPANY|FIRSTNAME|LASTNAME)\b")

# --- signatures, footers, opt-out routes ----------------------------------------------------------
_SIGN_OFF_LINE = re.compile(
    r"^\s*(?:best|best regards|kind regards|warm regards|warmest regards|regards|cheers|thanks|thank you|"
    r"many thanks|thanks again|sincerely|yours(?: truly| sincerely)?|all the best|talk soon|speak soon|warmly|"
    r"respectfully|cordially|with gratitude|mit freundlichen grüßen|viele grüße|beste grüße|liebe grüße|"
    r"cordialement|bien à vous|saludos|un saludo|atentamente|cordiali saluti|un saluto|met vriendelijke groet|"
    r"groeten|med vänlig hälsning|hälsningar|pozdrawiam|с уважением)\s*[,.!-]*\s*(?:\w+\s*){0,3}$",
    re.IGNORECASE | re.MULTILINE,
)
# "... next week? Thanks, Sam" at the end of a paragraph: a second sign-off before the one reengage adds.
_SIGN_OFF_AT_END = re.compile(
    r"(?:^|[.!?]\s+)(?:thanks|thank you|many thanks|cheers|best|regards|best regards|kind regards|all the best|"
    r"warmly|talk soon)\s*[,.!-]?\s+(?-i:[A-Z][\w'-]+)(?:\s+(?-i:[A-Z][\w'-]+))?\s*[.!]?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_FOOTER = re.compile(
    r"^\s*(?:--+|__+)\s*$|\bsent from my\b|\bget outlook for\b|unsubscribe|opt[- ]?out|remove me|mailing list|"
    r"manage (?:your )?(?:email )?preferences|(?:you are|you're) receiving|this (?:email|message) was sent|"
    r"\b(?:reply|text|send|sms|respond)(?: with)?\s+[\"'“]?(?:stop|unsubscribe|remove|end|quit|cancel|yes|no)\b|"
    r"confidential(?:ity)? notice|privacy policy|all rights reserved|©|\(c\) ?\d{4}|registered in|vat (?:no|number)|"
    r"\bsuite \d+|\bp\.?o\.? box\b",
    re.IGNORECASE | re.MULTILINE,
)

# --- tone: reply markers, alarm, spam, profanity --------------------------------------------------
_REPLY_MARKER = re.compile(
    r"(?:^|[\s\]\)\-–—|:])(?:re|fwd?|aw|wg|sv|vs|vb|tr|rv|antw|antwort|ynt|ilt|odp|pd|res|enc|rif|ref|réf|rép|"
    r"vl|doorst|trs|r|i|reply|response|forward(?:ed)?|答复|回复|转发|轉寄|回覆|返信|転送|ответ|пересл|απ|σχετ|πρθ)"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+|\d+)?\s*[:：]"
    # "Re;", "Re - ...", "fw following up": the common markers with any separator, first in the subject
    r"|^\s*(?:re|fwd?)\s*(?:[;.>/-]|\s)",
    re.IGNORECASE,
)
# A subject (or prose) that implies a conversation the lead never had.
_PRIOR_CONVERSATION = re.compile(
    r"\b(?:in reply to|in response to|as (?:you )?requested|(?:you|you've|you have) (?:requested|asked "
    r"(?:for|about|me))|as (?:discussed|promised|agreed|requested|mentioned on|per our)|per our|"
    r"(?:following|after|since|about|from|on|re) (?:our|your) (?:call|chat|conversation|meeting|talk|demo|discussion|"
    r"request|message|email|e-mail|enquiry|inquiry|question|reply|visit|interest)|"
    r"(?:our|your) (?:call|chat|conversation|meeting|talk|discussion) (?:yesterday|today|earlier|last|on|this)|"
    r"your (?:request|enquiry|inquiry|question|reply|message|email)|"
    r"the (?:information|info|details|quote|proposal) you)\b",
    re.IGNORECASE,
)
# Look-alike letters and colons read as what they show before the marker check ("Rе:" with a Cyrillic е,
# "RΕ:" with a Greek Epsilon, "Rᴇ:" with a small capital, "Re∶" with a ratio sign).
_CONFUSABLES = str.maketrans(
    "АВЕКМНОРСТХУІЈЅаеорсухкмтвнііјѕԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧαεικνορτυχᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ∶ː꞉˸׃᠄፡",
    "ABEKMHOPCTXYIJSaeopcyxkmtbhiijsdqwABEZHIKMNOPTYXaeikvoptuxABCDEFGHIJKLMNOPRSTUVWYZ:::::::",
)
_LATIN = re.compile(r"[A-Za-z]")
_LOOK_ALIKE = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u1d00-\u1d2b\ua730-\ua7ff\u0280-\u02af]")


def _mixed_script_word(text: str) -> str | None:
    """A word mixing Latin letters with Greek, Cyrillic or small-capital look-alikes ("Fоllowing")."""
    return next((word for word in re.findall(r"\w+", text) if _LATIN.search(word) and _LOOK_ALIKE.search(word)), None)


_EXTERNAL_TAG = re.compile(
    r"^\s*(?:[\[\(](?:ext|external|extern|externe|caution|warning|spam)[^\]\)]*[\]\)]\s*)+", re.I
)
_ALARM_SUBJECT = re.compile(
    r"\b(?:invoice|overdue|past due|payment|paid|pay|billing|bill|receipt|urgent|urgently|asap|action required|"
    r"immediate(?:ly)?|final notice|final warning|notice|suspend\w*|locked|lock|verify|verification|password|"
    r"security|alert|account|refund|legal|lawsuit|court|warning|expire[sd]?|expiring|deadline|important|"
    r"attention|response required|reminder|problem|issue with|failed|declined|delivery|package|winner|"
    r"congratulations|prize|gift|free|you won)\b|[!$€£¥₹]",
    re.IGNORECASE,
)
_ALARM_BODY = re.compile(
    r"\b(?:invoice|overdue|past due|wire (?:the|a|your|transfer|money|funds|payment)|wire transfer|bank (?:details|"
    r"account)|routing number|iban|swift|gift cards?|bitcoin|crypto\w*|btc|usdt|password|log ?in (?:here|now)|"
    r"verify your|account (?:is |has been |will be )?(?:suspended|locked|closed|disabled)|legal action|lawsuit|"
    r"penalt(?:y|ies)|collections? agency|act now|act immediately|immediately|within 24 hours|"
    r"respond (?:today|now|immediately)|pay (?:now|today|the)|payment (?:is )?(?:due|required|link|details)|"
    r"final notice|last warning)\b",
    re.IGNORECASE,
)
_SPAM_PHRASES = re.compile(
    r"\b(?:click here|click below|buy now|order now|sign up (?:now|today)|limited time|once in a lifetime|"
    r"100% (?:free|satisfaction|guaranteed)|risk[- ]free|no obligation|no strings attached|winner|you(?:'ve| have) "
    r"(?:won|been selected)|congratulations|cash bonus|earn (?:money|\$)|make money|double your|best price|"
    r"lowest price|special promotion|exclusive (?:deal|offer)|amazing (?:deal|offer)|don'?t delete|this is not spam|"
    r"miracle|incredible deal|guaranteed results|unbelievable)\b",
    re.IGNORECASE,
)
_PROFANITY = re.compile(
    r"\b(?:sh[.*#]t\w*|lazy|incompetent|clueless|pathetic|f+u+c+k+\w*|sh[i1]+t(?:s|ty|tier|head|hole|show)?|bullsh\w*|b[i1]tch\w*|bastards?|a+ss+holes?|arse|"
    r"damn(?:ed|it)?|crap(?:py)?|d[i1]ck(?:s|head)?|piss(?:ed|ing)?(?: off)?|cunts?|wtf|stfu|screw (?:you|this|them)|"
    r"sucks?|stupid\w*|idiot\w*|dumb(?:est|er)?|morons?|retard(?:ed|s)?|sluts?|whores?|porn\w*|nudes?|viagra|"
    r"cialis|scheiße|merde|putain|mierda|cazzo|hell no|jackass|dipshit|prick|wankers?|bollocks|twats?)\b",
    re.IGNORECASE,
)
_SPACED_LETTERS = re.compile(r"(?<!\w)(?:[^\W\d_][ .]){2,}[^\W\d_](?!\w)")
_PICTOGRAPH = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff]")
_HTML_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]{2,8});", re.IGNORECASE)
_ACRONYMS = frozenset({"gdpr", "hipaa", "saas", "json", "html", "asap", "kpis", "okrs", "crms", "apis"})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})

# --- grounding -----------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_NUMBER_WORDS = re.compile(
    r"\b(?:eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?|dozens?|percent|per cent)\b",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"[$€£¥₹₽]|\b(?:usd|eur|gbp|chf|dollars?|euros?|pounds? sterling|bucks|cents?)\b|\b\d+\s*(?:k|m|bn)\b", re.I
)
_CLAIMS = re.compile(
    r"\b(?:guarantee\w*|warrant(?:y|ies)|money[- ]back|refund\w*|discount\w*|coupon\w*|promo(?:tion)?(?: code)?|"
    r"% off|percent off|half[- ]price|free (?:trial|month|months|setup|set-up|onboarding|audit|consultation|demo|"
    r"pilot|upgrade|licen[cs]e|seats?|plan)|for free|free of charge|no cost|at no charge|no charge|complimentary|"
    r"pric(?:e|es|ed|ing)|fees?|cheap\w*|lowest|roi|return on investment|award[- ]winning|award|number one|"
    r"best[- ]in[- ]class|industry[- ]leading|market[- ]leading|world[- ]class|leading provider|"
    r"fortune 500|certified|certification|compliant|compliance|soc ?2|hipaa|gdpr|iso ?\d{4,5}|pci|"
    r"clients? (?:include|like)|customers? (?:include|like)|trusted by|used by|partnered with|partner of|"
    r"backed by|as seen (?:in|on)|featured in|gartner|forrester|patent\w*|proven|scientifically|clinically|"
    r"save \w+ (?:dollars|money)|cut costs by|10x|2x|3x|instant\w*|overnight)\b|#\s?1\b",
    re.IGNORECASE,
)

# Offers and concessions said without the trigger words ("on the house", "won't cost you anything",
# "take a third off", "pay you back"): only when the knowledge base makes them.
_OFFERS = re.compile(
    r"\b(?:on the house|(?:is|are|'s) on us|(?:won'?t|will not|doesn'?t|does not|wouldn'?t|shouldn'?t) cost "
    r"(?:you )?(?:anything|a (?:thing|penny|cent|dime))|costs? (?:you )?nothing|(?<!you )(?<!you're )(?:is|are|be|"
    r"it's|comes|completely|totally|entirely|absolutely) free\b|free to (?:try|use|start)|"
    r"free for (?:the first|a (?:month|week|year)|\w+ (?:days|weeks|months))|without (?:any )?(?:charge|cost|paying)|"
    r"no charge|(?:take|knock|shave|get|give you|cut) (?:a |an |the )?(?:third|quarter|half|fifth|tenth|\d+\s*%|"
    r"\w+ percent) off|\boff (?:the|your) (?:first|price|bill|invoice|plan|fee|subscription)|pay (?:you )?back|"
    r"paid back|money back|cancel (?:at )?any ?time|no (?:contract|commitment|lock-in)|special (?:rate|deal|price|"
    r"terms)|lock in|(?:rate|price|deal|offer) (?:is )?(?:locked|reserved|held)|rebate|cash ?back|"
    r"credits? (?:on|toward|towards|to) your|trial|pilot)\b",
    re.IGNORECASE,
)
# Counts, multipliers and rankings said in words: claims that need the knowledge base.
_SMALL_COUNT = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\s+(?:out of|in|of (?:our|every|them|us|the \w+ (?:teams|"
    r"customers|companies))|\w+\s+)?(?:teams?|customers?|clients?|companies|company|users?|people|businesses|firms|"
    r"brands|organi[sz]ations|accounts|deals|reps|managers|leaders|times|percent|per cent|hours?|days?|weeks?|"
    r"months?|years?|minutes?|quarters?|seats|licen[cs]es|renewals|hand-offs)\b",
    re.IGNORECASE,
)
_MULTIPLIER = re.compile(
    r"\b(?:doubl(?:e|ed|es|ing)|tripl(?:e|ed|es|ing)|quadrupl\w*|\w+fold|twice (?:as|the|over|more)|"
    r"thrice|half (?:of|as|the)|by half|in half|halv(?:e|ed|es|ing)|(?:\w+|\d+) times (?:more|less|fewer|faster|"
    r"slower|better|higher|lower|as|the|over))\b(?!-check)(?!\s+(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine)\b)",
    re.IGNORECASE,
)
_RANKING = re.compile(
    r"\b(?:ranked|rated|voted|named|top[- ]rated|top[- ]ranked|highest[- ]rated|"
    r"(?:first|top|no\.? ?1|number one|#1) (?:in|among|on|across) (?:our|the|its|their|this)?\s*(?:category|market|"
    r"industry|space|field|sector|segment|list)|"
    r"the (?:leading|best|top|biggest|largest|fastest|fastest-growing|most popular|most trusted|most used|only) "
    r"(?:\w+ )?(?:tool|platform|solution|product|software|choice|option|provider|vendor|company|app|system|one))\b",
    re.IGNORECASE,
)
# A number from the knowledge base is grounded only with the same unit after it ("18% more", "15-minute"),
# not recombined ("cut your costs by 15%", "18 minutes").
_NUMBER_WITH_UNIT = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)\s*(?:-\s*)?(%|[^\W\d_]+)?")

# Fake deadlines and scarcity: the knowledge base sets no deadline.
_PRESSURE = re.compile(
    r"\b(?:decide|sign|commit|confirm|reply|respond|act|book|lock (?:it |this )?in) (?:by|before|within|today|"
    r"this week|soon|quickly|fast)\b|\b(?:offer|deal|rate|price|pricing|discount|slot|spot|window) "
    r"(?:ends|expires|closes|runs out|goes)\b|\bexpir(?:e|es|ed|ing|y)\b|\brunning out\b|\btime is (?:short|"
    r"running)|\b(?:spots?|slots?|places|seats|spaces) (?:are )?(?:limited|left|remaining|filling|going)|"
    r"\blimited (?:spots|slots|places|seats|availability|number|time)|\bonly (?:a few|\w+) (?:spots|slots|places|"
    r"seats|openings) (?:left|remain)|\b(?:spots?|slots?|places|seats) (?:close|go|goes|fill|will go) (?:to|at|"
    r"on|by|up|fast|quickly)|\blast chance\b|\b(?:won'?t|will not|doesn'?t|does not) last\b|\bwhile (?:it|they|"
    r"spots|stocks?|supplies) lasts?\b|\bfirst[- ]come\b|\b(?:before|by|until|after) (?:monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|tomorrow|tonight|the end of (?:the )?(?:day|week|month|quarter))\b|"
    r"\b(?:end of (?:the )?(?:day|week|month))\b|\b(?:after that|otherwise),? (?:the|your|this) (?:slot|spot|"
    r"offer|price|rate|place)\b|\bgoes to another\b|\bonly works if you\b|\bdecide soon\b|\bhurry\b",
    re.IGNORECASE,
)
# History and arrangements that never happened: a purchase, a contract, a referral, a call, an invite, an attachment.
_INVENTED = re.compile(
    r"\byour (?:contract|subscription|order|invoice|account with us|plan with us|licen[cs]e|trial|renewal with us)\b|"
    r"\b(?:thanks|thank you) (?:again )?for (?:buying|purchasing|choosing|signing|your (?:order|purchase|business|"
    r"interest|call|reply|time on)|taking my call|the (?:call|chat|meeting)|our (?:call|chat|meeting))|"
    r"\b(?:your|a) (?:colleague|boss|ceo|cto|cfo|coo|manager|co-?worker|team-?mate|friend|partner|assistant|"
    r"head of \w+)\b(?:\s+[A-Z][\w-]+)?\s+(?:already\s+)?(?:suggested|mentioned|recommended|referred|asked|told|"
    r"said|signed|approved|agreed|introduced|wanted|passed)|"
    r"\b(?:signed off|already (?:agreed|approved|signed|booked|scheduled|confirmed|sent|set up|arranged|paid|spoke)|"
    r"when we (?:spoke|talked|met|chatted)|as we (?:discussed|agreed|said)|on the phone|at the (?:conference|event|"
    r"show|expo|meetup))\b|"
    r"\b(?:I'?ve|I have) (?:already )?(?:booked|scheduled|reserved|set up|put|pencil+ed|blocked|attached|enclosed|"
    r"included) (?:us|you|a|an|the|some|time|it)\b|\bsent (?:you |over )?(?:an? |the )?(?:invite|invitation|"
    r"contract|proposal|quote|invoice|calendar|pdf|deck|agreement)|"
    r"\b(?:calendar|meeting) (?:invite|invitation|hold)|\binvite (?:for|to|is)\b|\battach(?:ed|ment|ing)\b|"
    r"\benclosed\b|\bsee (?:the )?(?:attached|enclosed|below)\b|"
    r"\b(?:pdf|deck|proposal|brochure|one-pager|whitepaper|white paper|document|slides|contract|quote)\b (?:is |are )?"
    r"(?:attached|enclosed|below|in your inbox)|"
    r"\b(?-i:[A-Z][a-z]+) (?:from your team |at \w+ )?(?:suggested|mentioned|recommended|referred|told me|asked me|"
    r"introduced|pointed me)\b",
    re.IGNORECASE,
)
# Links spelled out rather than written: "bitly slash nbdemo", "r/sales", "the hashtag northbeamdemo".
_DISGUISED_LINK = re.compile(r"\bslash\b|(?<![\w/])(?:r|u)/\w+|\bhashtag\b|(?<!\w)#\w", re.IGNORECASE)

# --- stage meaning --------------------------------------------------------------------------------
_ACKNOWLEDGES = re.compile(
    r"\bfollow(?:ing|ed)? up\b|\bfollow-up (?:on|to|from|about)\b|\bfollow(?:ing)? on from\b|"
    r"\bmy (?:last|previous|earlier|first|recent|other|original|two|couple of) (?:notes?|messages?|e-?mails?|"
    r"outreach|note)|"
    r"\b(?:the|my) (?:notes?|messages?|e-?mails?) I (?:sent|wrote|shared)|"
    r"\bI (?:wrote|reached out|emailed|sent|got in touch|contacted you|dropped you|shared|mentioned|have written|"
    r"'ve written|'ve reached out|have reached out|'ve emailed|have emailed)\b|"
    r"\b(?:circling|coming|checking) back\b|\bchecking in\b|\bin case (?:it|my (?:note|email|message)) "
    r"(?:slipped|got buried|got lost|went)|\bearlier (?:notes?|messages?|e-?mails?)\b|"
    r"\bsince I (?:last )?(?:wrote|reached out|emailed|got in touch)|\b(?:written|reached out|emailed) "
    r"(?:to you )?(?:twice|before|a couple of times|a few times)|\blast time I (?:wrote|reached)|"
    r"\bwhen I (?:wrote|reached out|emailed)|\bnot heard back|\bhaven'?t heard back",
    re.IGNORECASE,
)
_FINAL = re.compile(
    r"\b(?:this|it|here)(?: is|'s| will be|'ll be)? (?:my|the|a|our) (?:very )?(?:last|final)(?: (?:note|e-?mail|"
    r"message|time|one|outreach|follow-?up|try|attempt|word|nudge)\b|\s*[,.!;:]|$)|"
    r"\b(?:one|a) (?:last|final) (?:note|e-?mail|message|time|try|attempt|nudge|word|follow-?up|outreach)\b|"
    r"\b(?:last|final) (?:note|e-?mail|message|outreach|follow-?up) (?:from me|I'?ll send|I will send|on this)\b|"
    r"\bmy final\b|\bfinal (?:outreach|follow-?up|attempt)\b|"
    r"\b(?:won'?t|will not|am not going to|'m not going to|don'?t plan to|do not plan to)(?:\s+\w+){0,2}?\s+"
    r"(?:bother|email|e-mail|write|contact|reach out|follow up|trouble|message|chase|pester|be in touch|"
    r"keep (?:emailing|writing|following up|reaching out|chasing|bothering))\b(?:\s+\w+){0,3}?\s*"
    r"(?:again|further|anymore|any more|after (?:this|today)|beyond this)\b|"
    r"\bwill no longer (?:contact|email|write|reach out|follow up)\b|"
    r"\b(?:won'?t|will not) hear from me\b|\bnot (?:hear|be hearing) from me again\b|"
    r"\b(?:I'?ll|I will) (?:stop|leave it) (?:here|there|emailing|writing|reaching out|following up)\b|"
    r"\bclos(?:e|ing) (?:the loop|(?:your|the|this|my) (?:file|case|thread|ticket)|out)\b|"
    r"\blast time I(?:'ll| will)\b|\bno more (?:e-?mails|messages|"
    r"follow-?ups|notes) from me\b|\bleave it (?:there|here)\b|\bafter this,? I(?:'ll| will) (?:stop|leave)\b|"
    r"\bfarewell\b|\bgoodbye\b|\bsigning off\b|\bparting (?:note|words?|thought)\b|\blast (?:you'?ll|you will) "
    r"hear from me\b|\blast (?:time )?you hear from me\b|\bthe last of my\b",
    re.IGNORECASE,
)
_FUTURE_CONTACT = re.compile(
    r"\b(?:I'?ll|I will|I'?m going to|I am going to|I plan to|expect (?:me|another|a follow)|you'?ll hear from me|"
    r"will be in touch)\b(?!\s+(?:not|never|no longer|stop))(?:\s+\w+){0,3}?\s*(?:check in|check back|follow up|"
    r"reach out|write (?:again|back|you)|circle back|ping|touch base|e-?mail you|be in touch|get back to you|"
    r"try (?:you|again)|call you|nudge|revisit|come back|contact you|send (?:you )?(?:another|more|a follow))|"
    r"\b(?:talk|speak) (?:soon|again|next)|\buntil next time\b|\bnext (?:week|month|quarter),? I'?(?:ll| will)\b|"
    r"\bin (?:a|two|few|a few|a couple of) (?:weeks?|months?),? I'?(?:ll| will)\b|\bagain (?:next|in|soon)\b|"
    r"\bexpect (?:another|more|a (?:follow|note|message|e-?mail|call))|\b(?:another|one more) (?:note|e-?mail|"
    r"message|follow-?up) from me\b|\bcatch you (?:later|soon)\b|\bstay tuned\b|\bmore (?:soon|to come)\b|"
    r"\bkeep (?:you )?posted\b|\bkeep in touch\b|\bkeep trying\b|"
    # other people, other channels, later mailings: still more contact
    r"\b(?:I'?ll|I will|we'?ll|we will|someone|a colleague|my colleague|(?:one of )?my (?:team|colleagues)|"
    r"a teammate|our team)\b(?!\s+(?:not|never|no longer|stop))(?:\s+[\w'-]+){0,4}?\s+"
    r"(?:give you a (?:ring|call|buzz|shout)|call you|ring you|phone you|"
    r"text you|get in touch|reach out|be in touch|contact you|follow up|drop by|stop by|visit you|add you|send you|"
    r"sign you up|connect with you|message you)\b|\bnewsletters?\b|\bmailing\b|\bin the loop\b",
    re.IGNORECASE,
)
GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|dear|hiya|greetings|good (?:morning|afternoon|evening|day)|howdy|hallo|bonjour|hola|ciao)"
    r"\b(?:,?\s+(?P<who>[^\s,!:.]+(?:[ -][^\s,!:.]+){0,2}))?\s*[,!:.]?",
    re.IGNORECASE,
)
GENERIC_ADDRESSEES = frozenset({"there", "team", "all", "everyone", "folks", "again"})
_MODEL_TALK = re.compile(
    r"\b(?:ignore|disregard|forget) (?:all|any|the|previous|prior|above|your|these)\b|\binstructions?\b|"
    r"\bsystem prompt\b|\b(?:your|the|my|this) prompt\b|\bjailbreak\w*|\bas an ai\b|\blanguage model\b|"
    r"\bI cannot (?:help|comply)\b|"
    r"\b(?:ignoring|disregarding|forgetting) (?:everything|all|the|any|previous|prior|earlier|your|these)\b|"
    r"\b(?:everything|all of the) above\b|\byou are (?:now )?(?:talking|speaking|chatting) (?:to|with)\b|"
    r"\b(?:the|our|an?) (?:\w+ )?assistant\b|\bsystem (?:override|message|note|settings?|configuration)\b|"
    r"\boverride\b|\bsecret (?:configuration|key|prompt|settings?)\b|\bconfidential details\b|"
    r"\b(?:on|in) your (?:record|file|crm (?:entry|record)|lead record)\b|\b(?:subject|body|json) fields?\b|"
    r"\b(?:generated|drafted|written|composed|created) (?:by|with|using) (?:an? |our |the )?(?:ai|chatgpt|gpt|"
    r"openai|a model|model|bot)\b|\bI was (?:generated|programmed|told|instructed|asked to write)\b|"
    r"\bai (?:assistant|model|tool|writer)\b|\bchatgpt\b|\bgpt-?\d\w*|\bopenai\b",
    re.IGNORECASE,
)
# In a lead field, anything addressed to a model is an injection attempt.
_INSTRUCTIONS = re.compile(
    _MODEL_TALK.pattern + r"|\byou are (?:now|an?|the)\b|\bpretend (?:to be|you)\b|\bact as\b|"
    r"\brespond with\b|\boutput (?:only|the|this)\b|\bdo not follow\b|\bwrite (?:that|to|this)\b|"
    r"\bsay (?:that|this)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QualityVerdict:
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import tldextract  # the bundled public-suffix snapshot: no network fetch

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def _looks_like_domain(candidate: str) -> bool:
    labels = candidate.lower().strip(".").split(".")
    if len(labels) < 2 or all(label.isdigit() for label in labels) or not labels[-1].strip("-"):
        return False
    if labels[-1] in _RESERVED_SUFFIXES or labels[-1].startswith("xn--"):
        return True
    parts = _extractor()(candidate.lower())
    return bool(parts.suffix and parts.domain)


_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "\u2010": "-", "\u2011": "-"})


def reading(text: str) -> str:
    """What the checks read: `normalise` (NFKC, no invisible characters), and typographic apostrophes
    and hyphens as ASCII (`I’ll` is `I'll` to every pattern)."""
    return normalise(text).translate(_TYPOGRAPHY)


def _domains(text: str) -> list[tuple[str, bool]]:
    """Every domain in the text (obfuscated dots read as dots), and whether it was written plainly:
    as it stands in the text, with no path after it."""
    readable = _OBFUSCATED_DOT.sub(".", text)
    return [
        (match.group(1), match.group(1) in text and not readable[match.end() : match.end() + 1] == "/")
        for match in _DOMAIN_CANDIDATE.finditer(readable)
        if _looks_like_domain(match.group(1))
    ]


@lru_cache(maxsize=1)
def _phonenumbers() -> Any:
    import phonenumbers  # loaded on first use

    return phonenumbers


def _phone_numbers(text: str) -> list[str]:
    phonenumbers = _phonenumbers()
    found = {
        match.raw_string
        for region in _PHONE_REGIONS
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE)
        if sum(char.isdigit() for char in match.raw_string) >= 7 and not _YEAR_RANGE.fullmatch(match.raw_string)
    }
    found.update(number for number in _PHONE_LIKE.findall(text) if not _YEAR_RANGE.fullmatch(number))
    found.update(
        match.group(0).strip(" ,.;-") for match in _DIGIT_RUN.finditer(text) if _spoken_digits(match.group(0)) >= 7
    )
    return sorted(found)


def _spoken_digits(run: str) -> int:
    words = re.findall(r"\w+", run.lower())
    return sum(len(word) if word.isdigit() else _DIGITS_SAID.get(word, 1) for word in words)


def contact_problems(text: str, own_domains: Iterable[str] = ()) -> list[str]:
    """Links, domains, addresses, handles and phone numbers in (normalised) text."""
    problems: list[str] = []
    if match := _SCHEME.search(text):
        problems.append(f"link: {match.group(0).strip()}")
    if match := _IP_ADDRESS.search(text):
        problems.append(f"link to an IP address: {match.group(0)}")
    own = set(own_domains)
    for domain, plain in _domains(text):
        if not plain or registrable_domain(domain) not in own:
            problems.append(f"link or domain: {domain}")
    if match := _PATH_AFTER_SUFFIX.search(text) or _DISGUISED_LINK.search(text):
        problems.append(f"link: {match.group(0)}")
    if match := _AT_SIGN.search(text):
        problems.append(f"email address or handle: {match.group(0)}")
    problems.extend(f"phone number: {number}" for number in _phone_numbers(text))
    if match := _CONTACT_LABEL.search(text):
        problems.append(f"contact details: {match.group(0).strip()}")
    if match := _OFF_CHANNEL.search(text):
        problems.append(f"off-channel contact route: {match.group(0)}")
    if match := _CREDENTIAL_ASK.search(text):
        problems.append(f"asks for credentials, payment or contact details: {match.group(0)}")
    return problems


def _placeholder_problems(text: str) -> list[str]:
    problems = []
    if match := _MARKUP_CHARACTERS.search(text):
        problems.append(f"placeholder or markup: {match.group(0)!r}")
    if match := _PLACEHOLDER.search(text) or _PLACEHOLDER_CASED.search(text):
        problems.append(f"placeholder: {match.group(0)}")
    return problems


def _tone_problems(text: str, known_words: set[str]) -> list[str]:
    problems = []
    # Letters spaced or dotted apart ("s h i t", "H U G E") read as the word they spell.
    text = text + "\n" + _SPACED_LETTERS.sub(lambda match: re.sub(r"[ .]", "", match.group(0)), text)
    if match := _PROFANITY.search(text) or _PROFANITY.search(text.translate(_LEET)):
        problems.append(f"profanity or insult: {match.group(0)}")
    if match := _PICTOGRAPH.search(text) or _HTML_ENTITY.search(text):
        problems.append(f"emoji, pictograph or markup: {match.group(0)}")
    if match := _SPAM_PHRASES.search(text):
        problems.append(f"spam phrase: {match.group(0)}")
    shouted = [
        word
        for word in re.findall(r"\b[^\W\d_]{4,}\b", text)
        if word.isupper() and word.casefold() not in known_words | _ACRONYMS
    ]
    if shouted or re.search(r"\b[A-Z]{3,}\s+[A-Z]{3,}\b", text):
        problems.append(f"all-caps shouting: {(shouted or ['…'])[0]}")
    if text.count("!") > 1:
        problems.append("more than one exclamation mark")
    return problems


def _known_words(*texts: str) -> set[str]:
    return {word.casefold() for text in texts for word in re.findall(r"\w+", text)}


def field_problems(value: str) -> list[str]:
    """Why a lead field (name, company) must not be repeated in a message: anything a draft could not
    say, plus instructions aimed at a model. Empty: safe to repeat."""
    problems: list[str] = []
    if hidden := invisible_characters(value):
        problems.append(f"invisible or direction-control characters {', '.join(hidden)}")
    if CONTROL_CHARACTERS.search(value):
        problems.append("control characters")
    text = reading(value)
    problems += contact_problems(text)
    problems += _placeholder_problems(text)
    if match := _PROFANITY.search(text) or _PROFANITY.search(text.translate(_LEET)):
        problems.append(f"profanity or insult: {match.group(0)}")
    for pattern, what in ((_SPAM_PHRASES, "spam phrase"), (_ALARM_BODY, "alarming words"), (_FOOTER, "footer")):
        if match := pattern.search(text):
            problems.append(f"{what}: {match.group(0)}")
    if match := _INSTRUCTIONS.search(text):
        problems.append(f"instructions: {match.group(0)}")
    if match := _MONEY.search(text) or re.search(r"%", text):
        if not match.group(0)[0].isdigit():  # "3M" is a company, "$3M" is money
            problems.append(f"money or percentage: {match.group(0)}")
    if len(text) > COMPANY_CAP:
        problems.append(f"longer than {COMPANY_CAP} characters")
    return problems


@dataclass(frozen=True)
class LeadFacts:
    """What a message may say about a lead: only fields that pass the gate, in display form."""

    first_name: str
    company: str
    own_domains: tuple[str, ...]  # the lead's company domain (from its address) may be named
    days_since_contact: int | None
    last_contacted: datetime | None
    left_out: tuple[str, ...]  # "company: link or domain: bestdeals.ru", for the record
    withheld: tuple[str, ...] = ()  # the left-out fields as typed: a draft must not repeat them

    @classmethod
    def of(cls, lead: Lead, now: datetime) -> LeadFacts:
        left_out: list[str] = []
        name_problems = field_problems(lead.name)
        first = parse_person(lead.name).first if not name_problems else ""
        if name_problems:
            left_out.append(f"name: {name_problems[0]}")
        elif first and (problems := field_problems(first)):
            left_out.append(f"name: {problems[0]}")
            first = ""
        company_problems = field_problems(lead.company)
        company = display_company(lead.company) if not company_problems else ""
        if company_problems:
            left_out.append(f"company: {company_problems[0]}")
        elif lead.company.strip() and not company:
            left_out.append("company: a placeholder, not a company name")
        domain = registrable_domain(lead.email.rsplit("@", 1)[-1]) if "@" in lead.email else None
        own = (domain,) if domain and not is_public_mail_domain(domain) else ()
        try:
            contacted = parse_time(lead.last_contacted) if lead.last_contacted else None
        except InvalidTimeError:
            contacted = None
        withheld = [lead.name.strip()] if lead.name.strip() and not first else []
        withheld += [lead.company.strip()] if lead.company.strip() and not company else []
        return cls(
            first, company, own, days_since(lead.last_contacted, now), contacted, tuple(left_out), tuple(withheld)
        )


def _numbers(text: str) -> set[str]:
    return {number.replace(",", "").rstrip(".") for number in _NUMBER.findall(text)}


def _units(text: str) -> set[tuple[str, str]]:
    return {
        (number.replace(",", "").rstrip("."), (unit or "").lower().removesuffix("s"))
        for number, unit in _NUMBER_WITH_UNIT.findall(text)
    }


def _recombined(text: str, knowledge: KnowledgeBase, kb_units: set[tuple[str, str]]) -> list[str]:
    """Numbers that each come from the knowledge base, put together in one sentence although no single
    fact says them together ("A 40-person company cut manual work by 18% in two weeks")."""
    facts = [knowledge.offer, *knowledge.proof_points, knowledge.call_to_action]
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        said = {f"{n} {u}" for n, u in _units(sentence) & kb_units}
        said |= {m.group(0).lower() for m in _SMALL_COUNT.finditer(sentence)}
        if len(said) < 2:
            continue
        if not any(
            all(
                (part in fact.lower()) if not part[0].isdigit() else (tuple(part.split(" ", 1)) in _units(fact))
                for part in said
            )
            for fact in facts
        ):
            return [f"numbers not in the knowledge base together: {', '.join(sorted(said))}"]
    return []


def _grounding_problems(text: str, knowledge: KnowledgeBase, facts: LeadFacts, now: datetime) -> list[str]:
    kb_source = " ".join([knowledge.company, knowledge.offer, *knowledge.proof_points, knowledge.call_to_action])
    source = kb_source + " " + facts.company
    allowed = _numbers(facts.company)
    if facts.days_since_contact is not None:
        days = facts.days_since_contact
        allowed |= {str(days), str(days // 7), str(round(days / 7)), str(round(days / 30))}
    if facts.last_contacted is not None:
        allowed.add(str(facts.last_contacted.year))
    allowed |= {str(now.year), str(now.year + 1)}
    kb_numbers, kb_units = _numbers(kb_source), _units(kb_source)
    problems = [
        f"number not in the knowledge base: {number}" for number in sorted(_numbers(text) - allowed - kb_numbers)
    ]
    problems += [
        f"number not in the knowledge base with that meaning: {number} {unit}".rstrip()
        for number, unit in sorted(_units(text))
        if number in kb_numbers and number not in allowed and (number, unit) not in kb_units
    ]
    problems += _recombined(text, knowledge, kb_units - {(n, u) for n, u in kb_units if n in allowed})
    lowered = source.lower()
    for pattern, what in (
        (_NUMBER_WORDS, "number"),
        (_MONEY, "price"),
        (_CLAIMS, "claim"),
        (_SMALL_COUNT, "count"),
        (_MULTIPLIER, "multiplier"),
        (_RANKING, "ranking"),
        (_OFFERS, "offer"),
    ):
        for match in pattern.finditer(text):
            if match.group(0).lower() not in lowered:
                problems.append(f"{what} not in the knowledge base: {match.group(0)}")
                break
    return problems


def _repeats(text: str, field: str) -> bool:
    """Whether the text repeats a left-out field as typed ("For Unknown"), as a whole word."""
    value = reading(field).strip()
    return len(value) >= 2 and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def _made_up_problems(text: str, both: str) -> list[str]:
    """Pressure, history and look-alike letters that a model makes up: `text` the prose, `both` with the subject."""
    problems = []
    for pattern, what in ((_PRESSURE, "deadline or scarcity pressure"), (_INVENTED, "invented history or promise")):
        if match := pattern.search(both):
            problems.append(f"{what}: {match.group(0)}")
    if match := _PRIOR_CONVERSATION.search(text.translate(_CONFUSABLES)):
        problems.append(f"invented history (a conversation that never happened): {match.group(0)}")
    if word := _mixed_script_word(both):
        problems.append(f"look-alike letters from another script in a word: {word}")
    return problems


def _greeting_problem(paragraphs: list[str], facts: LeadFacts) -> str | None:
    for paragraph in paragraphs:
        match = GREETING.match(paragraph)
        if not match:
            continue
        who = (match.group("who") or "").strip()
        first_word = who.split(" ")[0].casefold() if who else ""
        if not who or first_word in GENERIC_ADDRESSEES or (who[0].isascii() and not who[0].isupper()):
            continue
        if not facts.first_name or first_word != facts.first_name.split(" ")[0].casefold():
            return f"greets someone other than the lead: {who}"
    return None


def _stage_problems(
    text: str, stage: FollowUpStage, is_final: bool | None, acknowledges_previous: bool | None
) -> list[str]:
    problems = []
    final_phrase = _FINAL.search(text)
    future = _FUTURE_CONTACT.search(text)
    if not _ACKNOWLEDGES.search(text):
        problems.append("does not acknowledge the earlier message")
    if acknowledges_previous is False:
        problems.append("model says it does not acknowledge the earlier message")
    if stage is FollowUpStage.FOLLOWUP_2:
        if not final_phrase:
            problems.append("final follow-up does not say it is the last message")
        if future:
            problems.append(f"final follow-up promises more contact: {future.group(0)}")
        if is_final is False:
            problems.append("model says the final follow-up is not final")
    else:
        if final_phrase:
            problems.append(f"first follow-up says it is the last message: {final_phrase.group(0)}")
        if is_final is True:
            problems.append("model says the first follow-up is final")
    return problems


def _subject_problems(raw: str, text: str) -> list[str]:
    problems = []
    if not SUBJECT_LIMITS[0] <= len(text.strip()) <= SUBJECT_LIMITS[1]:
        problems.append(f"subject length {len(text.strip())} outside {SUBJECT_LIMITS}")
    if CONTROL_CHARACTERS.search(raw):
        problems.append("control characters or line breaks in the subject")
    folded = text.translate(_CONFUSABLES)
    if _EXTERNAL_TAG.match(folded) or _REPLY_MARKER.search(" " + folded):
        problems.append("subject pretends to be a reply or forward")
    if match := _PRIOR_CONVERSATION.search(folded):
        problems.append(f"subject implies an earlier conversation: {match.group(0)}")
    if match := _ALARM_SUBJECT.search(text):
        problems.append(f"alarming subject: {match.group(0)}")
    if text.strip().isupper():
        problems.append("subject in capitals")
    return problems


def check_follow_up(
    subject: str,
    body: str,
    lead: Lead,
    stage: FollowUpStage,
    knowledge: KnowledgeBase,
    now: datetime,
    *,
    is_final: bool | None = None,
    acknowledges_previous: bool | None = None,
    facts: LeadFacts | None = None,
) -> QualityVerdict:
    """Every problem with a draft: the subject and the prose (paragraphs separated by blank lines,
    greeting included, without the link, signature and footer that reengage adds). `facts`: what
    the message may say about the lead (default: `LeadFacts.of(lead, now)`)."""
    facts = facts or LeadFacts.of(lead, now)
    problems: list[str] = []
    hidden = invisible_characters(subject + body)
    if hidden:
        problems.append(f"invisible or direction-control characters: {', '.join(hidden)}")
    if CONTROL_IN_BODY.search(body):
        problems.append("control characters in the body")
    subject_text, text = reading(subject), reading(body)
    both = subject_text + "\n\n" + text
    problems += _subject_problems(subject, subject_text)
    words = len(text.split())
    if not BODY_WORD_LIMITS[0] <= words <= BODY_WORD_LIMITS[1]:
        problems.append(f"body has {words} words, outside {BODY_WORD_LIMITS}")
    problems += contact_problems(both, facts.own_domains)
    problems += _placeholder_problems(both)
    if match := _SIGN_OFF_LINE.search(text) or _SIGN_OFF_AT_END.search(text):
        problems.append(f"signature or sign-off (reengage adds its own): {match.group(0).strip()}")
    if match := _FOOTER.search(both):
        problems.append(f"footer or opt-out wording (reengage adds its own): {match.group(0).strip()}")
    if knowledge.sender_name and re.search(rf"^\s*{re.escape(knowledge.sender_name)}\s*$", text, re.I | re.M):
        problems.append("signature: the sender's name on a line of its own")
    if match := _ALARM_BODY.search(text):
        problems.append(f"alarming or payment wording: {match.group(0)}")
    problems += _made_up_problems(text, both)
    if repeated := next((field for field in facts.withheld if _repeats(both, field)), None):
        problems.append(f"repeats a lead field the gate left out: {repeated}")
    if match := _MODEL_TALK.search(both):
        problems.append(f"talks about instructions or prompts: {match.group(0)}")
    problems += _tone_problems(both, _known_words(knowledge.company, knowledge.offer, facts.company))
    problems += _grounding_problems(both, knowledge, facts, now)
    if greeting := _greeting_problem([block.strip() for block in text.split("\n\n")], facts):
        problems.append(greeting)
    problems += _stage_problems(text, stage, is_final, acknowledges_previous)
    return QualityVerdict(tuple(dict.fromkeys(problems)))
