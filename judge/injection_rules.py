"""Detection rules and structural patterns of the prompt-injection defence (data, not logic).

Kept apart from :mod:`judge.injection` so the rule tables can grow without the scanning code
growing with them. Every rule is a named regular expression run over the normalised text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Structural tokens (neutralised, and flagged as fake delimiters)
# --------------------------------------------------------------------------------------------
CHAT_TOKEN_RE = re.compile(
    r"<\|\s*/?[A-Za-z0-9_ .:-]{1,40}\s*\|>"  # <|im_start|>, <|eot_id|>, <|system|> ...
    r"|\[/?(?:INST|SYS)\]"  # Llama 2
    r"|<</?SYS>>"
    r"|</?(?:start_of_turn|end_of_turn|bos|eos|s)>"  # Gemma, sentencepiece
    r"|<\uff5c[^\uff5c>]{1,40}\uff5c>",  # DeepSeek fullwidth bars
    re.IGNORECASE,
)
ROLE_WORDS = r"system|assistant|developer|judge|evaluator|grader|instructions?|inst|sys|model"
FENCE_RE = re.compile(rf"```+[ \t]*({ROLE_WORDS}|prompt|user|human)\b", re.IGNORECASE)
XML_TAG_RE = re.compile(
    r"</?\s*(instructions?|transcript|conversation|untrusted|data|content|judge|evaluator|prompt|"
    r"user_input|context|rubric|messages|turns|chat_history|history|dialogue|evaluation|review|"
    r"grading\w*|verdict|assessment)\s*>"
    r"|</?\s*(system|assistant|developer)\s*>(?=[^\n]{0,80}\b(?:verified|verdict|score|pass|"
    r"resolved|instruction|rubric|criteri|evaluat|judge|grade))",
    re.IGNORECASE,
)
_CONTAINER = (
    r"(?:transcript|conversation|chat|dialogue|dialog|log|data|messages|turns|context|history|"
    r"records|input|report|content|document|ticket|untrusted|evaluation\s+data)s?"
)
_ENDING = r"(?:end(?:s|ed|ing)?|close[sd]?|over|complete[d]?|stop(?:s|ped)?|finish(?:ed)?|/)"
#: A line that says the data ends: "END OF TRANSCRIPT", "---- transcript ends ----",
#: "[/conversation]", "##### END OF LOG #####". Neutralised always; flagged when evaluation
#: words follow it (a pasted "--- end of chat log ---" followed by a question is not an attack).
END_LINE_RE = re.compile(
    rf"^[\W_]*(?:\w+[\W_]+)?(?:{_ENDING}[\W_]*(?:of[\W_]+)?(?:the[\W_]+)?(?:customer[\W_]+|"
    rf"user[\W_]+)?{_CONTAINER}|{_CONTAINER}[\W_]+{_ENDING})[\W_]*(?:log|here|now)?[\W_]*$"
    r"|^[\W_]*(?:BEGIN|END)[ _](?:UNTRUSTED|DATA|CONTENT|TRANSCRIPT)\b",
    re.IGNORECASE | re.MULTILINE,
)
#: The same marker after a sentence, fenced by runs of symbols: "I checked the logs. #####
#: END OF LOG #####" (a red-team pass padded a line-start marker with a sentence).
MID_LINE_END = (
    rf"(?<=[.!?:])[ \t]+([#=*~_<>|\[\]-])\1{{2,}}[ \t]*(?:{_ENDING}[ \t]+(?:of[ \t]+)?"
    rf"(?:the[ \t]+)?{_CONTAINER}|{_CONTAINER}[ \t]+{_ENDING})[ \t]*[#=*~_<>|\[\]-]{{3,}}"
)
#: What any match of :data:`MID_LINE_END` holds: a run of one symbol.
MID_LINE_END_ANCHORS = tuple(ch * 3 for ch in "#=*~_<>|[]-")
#: A line that opens new instructions: flagged wherever it is.
BEGIN_LINE_RE = re.compile(
    r"^[\W_]*(?:(?:begin|start)(?:ning)?\s+(?:of\s+)?(?:the\s+)?(?:new\s+)?(?:system|"
    r"instructions?|judge|evaluator|developer|admin)\b"
    r"|(?:new|updated|real|actual|true|hidden)\s+(?:system\s+)?instructions?\s*[:\-]?\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
BOUNDARY_LINE_RE = re.compile(
    f"{END_LINE_RE.pattern}|{BEGIN_LINE_RE.pattern}", re.IGNORECASE | re.MULTILINE
)
_AFTER_END = (
    r"(?=[\s\S]{0,300}?\b(?:resolved|verified|verdict|pass(?:ed|es)?|scor\w*|evaluat\w+|"
    r"assess\w*|review\w*|conclusion|determination|analysis|result|grad\w+|rubric|criteri\w+|"
    r"qa|instructions?|judge|success\w*|approved|outcome|decision|output|confirmed|system)\b)"
)
FAKE_ROLE_LINE_RE = re.compile(
    r"^[ \t>*_-]*(?:"
    # [system] <assistant> {judge}; not an inline element such as <system>disk full</system>
    rf"[\[<{{]\s*/?\s*(?:{ROLE_WORDS}|user|human)\s*[\]>}}](?![^\n]*</)"
    rf"|#{{1,6}}\s*(?:{ROLE_WORDS}|response|new\s+instructions?)\s*(?::|$)"  # ### System
    r"|(?-i:SYSTEM|ASSISTANT|DEVELOPER|JUDGE|EVALUATOR|GRADER|HUMAN)\s*:"  # SYSTEM:
    r"|human\s*:"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
ROLE_WITH_VERDICT_RE = re.compile(
    r"^[ \t>*_-]*(?:system|assistant|developer|judge|evaluator|grader|human|ai|model)\s*"
    r"(?:prompt|message|instructions?|note|override|update)?\s*:[^\n]*?\b(?:verified|verdict|"
    r"scored?|scores|criteri(?:a|on)|rubric|rating|pass(?:es|ed)?|instructions?|decision|gates?)\b",
    re.IGNORECASE | re.MULTILINE,
)

# --------------------------------------------------------------------------------------------
# Rules over the detection text
# --------------------------------------------------------------------------------------------
STRONG_JUDGE = (
    r"(?:judge|evaluator|grader|verifier|assessor|scorer|rater|llm|language\s+model|"
    r"ai\s+(?:judge|reviewer|evaluator|grader)|automated\s+(?:reviewer|"
    r"system|checker|grader|evaluator|judge)|reviewer\s+model|scoring\s+model|qa\s+(?:bot|model))"
)
ANY_JUDGE = rf"(?:{STRONG_JUDGE}|reviewer|model|ai|system|assistant|bot|auditor)"
VERDICT_WORD = (
    r"(?:resolved|verified|solved|successful|a\s+success|pass(?:ed|ing)?|a\s+pass|correct|"
    r"accurate|compliant|complete[d]?|approved|fully\s+resolved)"
)
# Who says it matters: "I'll mark this as resolved" is an agent at work, not an instruction.
SPEAKER_EXCLUSION = re.compile(
    r"(?:\b(?:i|we|i'll|we'll|i've|we've|i'd|we'd|i\s+will|we\s+will|i\s+can|we\s+can|will|can|"
    r"could|may|might|would|free\s+to|ahead\s+and|want\s+to|able\s+to|let\s+me|agent|they|"
    r"he|she|who)\s*$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rule:
    """A named pattern. ``anchors``: lower-case substrings one of which any match contains; the
    pattern only runs on text holding one (a cheap prefilter for large alternations)."""

    name: str
    pattern: re.Pattern[str]
    speaker_check: bool = False  # skip matches preceded by a first-person/modal speaker
    anchors: tuple[str, ...] = ()


def rule(name: str, regex: str, *, speaker_check: bool = False, flags: int = re.IGNORECASE) -> Rule:
    return Rule(name, re.compile(regex, flags), speaker_check)


#: After the instructions word: instructions the writer gave ("the instructions I sent"), or
#: ones in the writer's own earlier message ("the instructions in our last reply"): someone
#: taking back their own words, not an order to drop the prompt.
NOT_THEIR_OWN_GIVEN = r"(?!\s+(?:i|we)\s+(?:sent|gave|wrote|mentioned|had)\b)"
NOT_THEIR_OWN_MESSAGE = (
    r"(?!\s+(?:in|from)\s+(?:my|our)\s+(?:(?:last|previous|earlier)\s+)?"
    r"(?:reply|message|e-?mail|mail|note|comment|answer|letter|post)\b)"
)

RULES: tuple[Rule, ...] = (
    rule(
        "ignore_instructions",
        r"\b(?:ignore|disregard|forget|override|bypass|skip|neglect|discard|set\s+aside)\s+"
        r"(?:(?!my\b|our\b)[\w'-]+\s+){0,4}?(?:instructions?|prompts?|rules?|guidelines?|"
        r"directions?|directives?|criteria|rubric|system\s+(?:message|prompt)|programming|"
        rf"constraints?|guidance)\b{NOT_THEIR_OWN_GIVEN}{NOT_THEIR_OWN_MESSAGE}",
    ),
    rule(
        # ... unless the instructions are "all", "previous", "system" ones: that is the prompt,
        # wherever the text says they were.
        "ignore_instructions",
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?!my\b|our\b)[\w'-]+\s+){0,3}?(?:"
        r"all|any|every|previous|prior|system|initial|above|earlier|original)\s+"
        r"(?:(?!my\b|our\b)[\w'-]+\s+){0,2}?(?:"
        rf"instructions?|prompts?|rules?|guidelines?|directives?)\b{NOT_THEIR_OWN_GIVEN}",
    ),
    rule(
        "ignore_instructions",
        r"\b(?:ignore|disregard|forget)\s+(?:(?:everything|all|anything|the(?:\s+text)?|what(?:ever)?"
        r"(?:\s+was)?(?:\s+said)?)\s+)?(?:above|before\s+this|previously\s+said)\b",
    ),
    rule(
        "mark_as_verdict",
        r"\b(?:mark|classify|label|flag|record|log|register|score|grade|rate|judge|evaluate|assess|"
        r"treat|count|consider|report|tag)\s+(?:this|that|it|the|each|every|all)\b(?:\s+[\w'-]+)"
        rf"{{0,3}}?\s+(?:as|to\s+be)\s+(?:being\s+|fully\s+|successfully\s+)?{VERDICT_WORD}\b",
        speaker_check=True,
    ),
    rule(
        "mark_as_verdict",
        r"\b(?:must|should|shall|needs?\s+to|has\s+to|is\s+to|to)\s+be\s+(?:scored|rated|graded|"
        r"judged|evaluated|considered|treated|classified|labell?ed|counted|recorded)\s+(?:as\s+)?"
        rf"(?:a\s+)?(?:{VERDICT_WORD}|\d)",
    ),
    rule(
        "mark_as_verdict",
        r"\bset\s+(?:the\s+|your\s+)?(?:decision|verdict|score|rating|grade|evaluation|judge?ment)s?"
        r"\s+(?:to|=|as)\b",
    ),
    rule(
        "addresses_judge",
        r"\bas\s+(?:the|an?|my|our|your)?\s*(?:ai\s+|llm\s+|automated\s+)?(?:evaluator|judge|"
        r"grader|verifier|assessor|scorer|rater)\s*(?:[,:]|\s(?:you|please|it\s+is|reading))",
    ),
    rule(
        "addresses_judge",
        rf"\b(?:dear|hey|hi|hello|attention|attn|psst|ok|okay|listen)[\s,:!-]+(?:the\s+|mr\.?\s+|"
        rf"ms\.?\s+)?{STRONG_JUDGE}s?\b",
    ),
    rule(
        "addresses_judge",
        r"\b(?:note|message|instructions?|reminder|memo|directive|notice|p\.?\s?s\.?)\s+(?:to|for)\s+"
        rf"(?:the\s+|any\s+|all\s+|an?\s+)?(?:{STRONG_JUDGE}|ai|model|llms?)s?\b",
    ),
    rule(
        "addresses_judge",
        rf"\b{ANY_JUDGE}s?\s+(?:who\s+is\s+|that\s+is\s+|currently\s+)?(?:reading|grading|"
        r"evaluating|reviewing|scoring|checking|assessing|judging|analy[sz]ing|rating)\s+"
        r"(?:this|the\s+(?:transcript|conversation|chat|ticket|outcome|report))\b",
    ),
    rule(
        "addresses_judge",
        r"\b(?:judge|evaluator|grader|verifier|assessor|llm)\s*[,:]\s*(?:please|you|ignore|mark|"
        r"score|rate|output|return|respond|answer|this|the|set|give|award|pass|it)\b",
    ),
    rule(
        "role_override",
        r"\byou\s+are\s+(?:now\s+|no\s+longer\s+)?(?:the|an?|my|our)\s+(?:new\s+)?(?:[\w-]+\s+)?"
        r"(?:judge|evaluator|grader|verifier|assessor|scorer|rater)\b",
    ),
    rule(
        "role_override",
        r"\b(?:act|behave|respond|serve)\s+as\s+(?:the|an?)\s+(?:[\w-]+\s+)?(?:judge|evaluator|"
        r"grader|verifier|assessor|scorer|rater)\b",
    ),
    rule(
        "role_override",
        r"\b(?:from\s+now\s+on|henceforth|starting\s+now)\b[^.\n]{0,60}\byou\b[^.\n]{0,60}\b(?:"
        r"answer|respond|reply|output|score|rate|mark|judge|evaluate|say|return|grade)",
    ),
    rule(
        "role_override",
        r"\b(?:your\s+)?(?:new\s+)?(?:role|persona|task|objective|instructions?)\s+(?:has|have)\s+"
        r"(?:changed|been\s+(?:updated|changed|replaced))\b|\byour\s+new\s+(?:role|persona|task|"
        r"instructions?|objective)\s*(?:is|are|:)|\byou\s+are\s+now\s+(?:in\s+)?(?:developer|"
        r"admin|god|dan|jailbreak)\s+mode\b|\bpretend\s+(?:to\s+be|you\s+are)\s+(?:the|an?)\s+"
        r"(?:judge|evaluator|grader)",
    ),
    rule(
        "score_instruction",
        r"\b(?:score|rate|grade|evaluate|assess|mark)\s+(?:this|the|each|every|all)\s+(?:of\s+the\s+)?"
        r"(?:[\w-]+\s+){0,2}?(?:criteri(?:a|on)|gates?|transcript|conversation|outcome|"
        r"interaction|ticket|case|response|chat|report)s?\s+(?:as\s+|at\s+(?:the\s+)?|with\s+"
        r"(?:a\s+)?|a\s+)?(?:\d+(?:\.\d+)?(?!\s*stars?)(?:\s*(?:/|out\s+of)\s*\d+)?|pass(?:ing|ed)?|"
        r"verified|resolved|full\s+marks|max(?:imum)?|highest|perfect|top)",
    ),
    rule(
        "score_instruction",
        r"\b(?:give|award|assign|grant)\s+(?:[\w-]+\s+){0,5}?(?:a\s+)?(?:score|rating|grade|"
        r"marks?|points?)\b[^.\n]{0,60}\b(?:criteri(?:a|on)|rubric|gates?|transcript|evaluation)"
        r"|\b(?:give|award|assign|grant)\s+(?:each|every|all)\s+(?:of\s+the\s+)?(?:criteri(?:a|on)|"
        r"gates?)",
    ),
    rule(
        "score_instruction",
        r"\b(?:output|return|respond|reply|answer|say|print|write|emit|conclude)\s+(?:(?:only|just|"
        r"with|that|the\s+word|exactly|simply)\s+)*[\"'“]?(?:verified|pass(?:ed)?\b|\{\s*\"|"
        r"[\"']?decision)",
    ),
    rule(
        "score_instruction",
        r"[\"']?\b(?:decision|verdict)[\"']?\s*[:=]\s*[\"']?(?:verified|pass(?:ed)?)\b"
        r"|[\"']criteria[\"']\s*:\s*\{"
        r"|\ball\s+(?:the\s+)?gates?\s+(?:are\s+|have\s+)?(?:pass(?:ed)?|met|satisfied|green)\b"
        r"|\bpass\s+all\s+(?:the\s+)?(?:gates?|criteria)\b",
    ),
    rule(
        "score_instruction",
        r"\b(?:correct|right|only|expected|final|true|proper)\s+(?:verdict|decision|score|rating|"
        r"grade|evaluation|judge?ment)\s+(?:here\s+|for\s+this\s+[\w-]+\s+)?(?:is|=|:|should\s+be|"
        r"must\s+be|would\s+be)\s+[\"']?(?:verified|resolved|pass|\d|full|correct)",
    ),
    rule(
        "fake_delimiter",
        r"<{3,}|(?<!^)(?<!\n)(?<!>)>{3,}(?!\s)|\b(?:BEGIN|END)[ _](?:UNTRUSTED|DATA|CONTENT)\b",
    ),
    rule(
        "system_override",
        r"\b(?:system|admin(?:istrator)?|developer|security|policy)\s+override\s*(?:[:=]|code|"
        r"mode|enabled|activated|granted|engaged|in\s+effect|accepted|applied)"
        # a billing or order system's audit line records an override *on* a record
        r"(?!\s+(?:to|on|for)\s+(?:the\s+)?(?:invoice|order|payment|refund|charge|subscription|"
        r"account|card|booking|shipment|line\s+item)s?\b)"
        r"|\boverride\s+(?:code|mode|authori[sz]ation)\b",
    ),
    rule(
        "misleads_reviewer",
        # "tell QA the refund followed policy": content scripting what reviewers should believe.
        r"\b(?:tell|inform|assure|convince|notify|reassure)\s+(?:the\s+)?(?:qa|quality\s+"
        r"(?:assurance|team)|reviewers?|auditors?|evaluators?|graders?|judges?|compliance)\b"
        r"(?:\s+(?:team|that))*\s+(?:the\s+|this\s+|it\s+|everything\s+)?[\w-]*\s*"
        r"(?:followed|was|were|is|complied|met|passed|resolved|approved|within|compliant)\b",
        speaker_check=True,
    ),
    # The same orders in the languages our customers write in (es, pt, fr, it, de, nl); see
    # judge.injection_lexicon for the concept rules in more languages.
    rule(
        "mark_as_verdict",
        r"\b(?:marca|m[aá]rquela|marque[sz]?|markiere|markeer|segna|classifica|considera)\s+"
        r"(?:[\w'-]+\s+){0,4}?(?:como|comme|als|come)\s+(?:resuelt[oa]|resolvid[oa]|r[ée]solue?|"
        r"gel[öo]st|opgelost|risolt[oa]|verificad[oa]|v[ée]rifi[ée]e?)\b",
        speaker_check=True,
    ),
    # Scores, verdicts and roles claimed outright (found by tests/reliability/injection_corpus).
    rule(
        "score_instruction",
        r"\b(?:score|rate|grade|mark)\s+(?:it\s+|this\s+|them\s+)?(?:a\s+)?\d+(?:\.\d+)?\s+"
        r"(?:on|for|across|in)\s+(?:every|each|all|everything)\b",
        speaker_check=True,
    ),
    rule(
        "score_instruction",
        r"\b(?:correct|right|only|expected|final|true|proper)\s+(?:verdict|decision|score|rating|"
        r"grade|evaluation|judge?ment)\s+(?:here\s+)?(?:is\s+|=\s*|:\s*|should\s+be\s+|must\s+be\s+)?"
        r"[\"']?(?:verified|pass(?:ed)?)\b",
    ),
    rule(
        "score_instruction",
        r"\b(?:evaluation|grading|judge?ment|assessment)[\"']?\s*[:=]\s*[\"']?(?:verified|pass(?:ed)?)\b",
    ),
    rule(
        "role_override",
        r"\b(?:i\s+am|i'm|this\s+is)\s+(?:the|your)\s+(?:ai\s+|llm\s+)?(?:judge|evaluator|grader|"
        r"verifier|assessor)\s+(?:for|of|on)\s+(?:this|the)\b",
    ),
    rule(
        "mark_as_verdict",
        r"\b(?:rate|mark|grade|score|declare|deem)\s+(?:it|this)\s+(?:as\s+)?verified\b",
    ),
    # ja, zh, ko, ru, pl. Russian is written as it reads after the look-alike folding (Cyrillic
    # а/е/о/р/с/у read as Latin), which runs before the rules.
    rule(
        "ignore_instructions",
        r"(?:無視|忽略|忽视)[^。\n]{0,20}(?:指示|指令|命令|ルール|规则)"
        r"|(?:指示|指令|命令|ルール|规则)[^。\n]{0,20}(?:無視|忽略|忽视)"
        r"|(?:지시|명령|규칙)[^.\n]{0,20}무시"
        r"|\b(?:(?:п[рp][оo])?и[гg]н[оo][рp]и[рp][уy]й|з[аa]б[уy]д[ьb])\w*\s+"
        r"(?:\w+\s+){0,3}?(?:ин[сc]т[рp][уy]к\w*|[уy]к[аa]з[аa]ни\w*|п[рp][аa]вил\w*)"
        r"|\b(?:zignoruj|zapomnij|pomi[nń])\s+(?:[\w-]+\s+){0,3}?(?:instrukcj\w*|polece\w*|zasad\w*)",
    ),
    rule(
        "addresses_judge",
        r"\b(?:querid[oa]|estimad[oa]|cher|ch[eè]re|liebe[rs]?|car[oa]|prezad[oa]|beste)\s+"
        r"(?:evaluador[a]?|[ée]valuat(?:eur|rice)|bewerter(?:in)?|pr[üu]fer(?:in)?|"
        r"valutat(?:ore|rice)|avaliador[a]?|beoordelaar)\b"
        r"|\b(?:evaluador[a]?|[ée]valuateur|bewerter|valutatore|avaliador|beoordelaar)\s*[,:]",
    ),
    rule("fake_delimiter", CHAT_TOKEN_RE.pattern),
    rule("fake_delimiter", FENCE_RE.pattern),
    rule("fake_delimiter", XML_TAG_RE.pattern),
    rule("fake_delimiter", f"(?:{END_LINE_RE.pattern}){_AFTER_END}", flags=re.I | re.M),
    Rule(
        "fake_delimiter",
        re.compile(f"{MID_LINE_END}{_AFTER_END}", re.I | re.M),
        anchors=MID_LINE_END_ANCHORS,
    ),
    Rule("fake_delimiter", BEGIN_LINE_RE),
    Rule("fake_role_line", FAKE_ROLE_LINE_RE),
    Rule("fake_role_line", ROLE_WITH_VERDICT_RE),
)

# Extra rules for tool results: tools return data, so text in them giving orders is suspicious.
TOOL_RULES: tuple[Rule, ...] = (
    rule(
        "tool_result_instruction",
        r"\b(?:ai|assistant|model|llm|agent|bot|chatbot)\s*[,:]\s*(?:please\s+)?(?:ignore|disregard|"
        r"you\s+must|you\s+should|always|never|do\s+not|don't|tell|say|respond|reply|output|mark|"
        r"report|confirm)\b",
    ),
    rule(
        "tool_result_instruction",
        r"\b(?:for|to)\s+(?:the\s+)?(?:support\s+|customer[\s-]service\s+|help\s*desk\s+)?"
        r"(?:ai|assistant|bot|chatbot|llm|model)s?\s*:",
    ),
    rule(
        "tool_result_instruction",
        r"\b(?:important|attention|urgent|note)\s*[:!]+\s*(?:ignore|disregard|"
        r"the\s+(?:assistant|ai|model)\s+(?:must|should))",
    ),
)
