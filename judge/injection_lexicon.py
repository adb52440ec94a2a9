"""Concept rules in many languages, and rules scoped to who wrote the text (data, not logic).

The rules of :mod:`judge.injection_rules` name English orders. These name *concepts* (an
evaluator, ignoring instructions, marking as resolved, a full score) in the languages support
tickets arrive in, and run over the cleaned text in its own script; and they name what only some
authors have no reason to write: an agent or a tool talking about the evaluation, quoting a prior
review or a verdict, narrating the customer in the third person, or printing a turn of the chat.
"""

from __future__ import annotations

import re

from judge.injection_rules import NOT_THEIR_OWN_GIVEN, NOT_THEIR_OWN_MESSAGE, Rule

__all__ = [
    "AGENT_RULES",
    "ANY_LANGUAGE_RULES",
    "CUSTOMER_RULES",
    "EVAL_VOCABULARY_RE",
    "FORGED_RULES",
    "META_RULES",
    "ROLE_RULES",
    "SOURCE_RULES",
]

_I = re.IGNORECASE | re.MULTILINE

# -- concepts --------------------------------------------------------------------------------
EVALUATOR = (
    r"(?:\b(?:judge|evaluator|grader|assessor|rater|scorer|verifier|reviewer|auditor)s?\b"
    r"|\bwho(?:ever)?\s+(?:is\s+)?(?:grad|review|evaluat|assess|check|scor|read)\w*\s+this"
    r"|\banyone\s+(?:reading|reviewing|grading|checking|comparing)\b"
    r"|\b(?:pr[üu]fer\w*|gutachter\w*|bewerter\w*|beurteiler\w*|pr[üu]fende[nr]?\s+ki)\b"
    r"|\b(?:[ée]valuat(?:eur|rice)s?|correcteur|examinat(?:eur|rice))\b|l'ia\s+qui\s+(?:note|[ée]value)"
    r"|\b(?:evaluador[a]?|calificador[a]?|quien\s+eval[úu]e|examinador[a]?)\b"
    r"|\b(?:avaliador[a]?|valutator[ei]|valutatore|revisore|beoordelaar|beoordelende)\b"
    r"|\b(?:oceniaj[ąa]c\w*|weryfikator\w*|recenzent\w*)\b"
    r"|\b(?:de[ğg]erlendirici\w*|hakem\w*|denet[çc]i\w*|puanlay[ıi]c[ıi]\w*)\b"
    r"|ng[ưu][ờo]i\s+(?:đánh\s+giá|chấm)|\bai\s+chấm|giám\s+khảo"
    r"|\b(?:penilai|peninjau|mtathmini|mkaguzi)\b"
    r"|\b(?:оценщик\w*|проверяющ\w*|ревьюер\w*|асессор\w*)"
    r"|(?:ال|لل)?م[ُ]?قي[ِّ]*م|(?:ال|لل)?محك[ّ]?م|(?:ال|لل)?مدق[ّ]?ق"
    r"|मूल्यांकनकर्ता|समीक्षक|परीक्षक|निर्णायक|जाँचकर्ता"
    r"|评审|评估员|评估者|评估模型|评分员|评分模型|评委|裁判|审核员|审阅者|评判者|阅卷"
    r"|審査|評価者|採点者|評価担当|審査員"
    r"|평가자|심사위원|채점자|검토자|심사자)"
)
_IGNORE = (
    r"(?:\b(?:ignore|disregard|forget|override|bypass)\b|au[ßs]er\s+acht|ignorier\w*|\bvergiss\b|"
    r"missachte\w*|yok\s+say|g[öo]rmezden\s+gel|\bunut\b|bỏ\s+qua|phớt\s+lờ|تجاهل|أهمل|"
    r"अनदेखा|नज़रअंदाज़|नजरअंदाज|忽略|无视|忽视|不要理会|無視|무시|игнорир\w*|забуд\w*|"
    r"\bignor[ae]\w*|\bolvid[ae]\w*|\boubli\w*|\bdimentica\b|\bzignoruj\b|\bzapomnij\b|"
    r"\babaikan\b|\blupakan\b|\bpuuza\b|\bnegeer\b|\bvergeet\b|\bdesconsider\w*)"
)
_INSTRUCTIONS = (
    r"(?:\b(?:instructions?|prompts?|rules?|guidelines?|rubric|criteria|directives?)\b|"
    r"anweisung\w*|vorgaben|\bregeln\b|richtlinien|talimat\w*|kurallar\w*|y[öo]nerge\w*|"
    r"hướng\s+dẫn|chỉ\s+dẫn|quy\s+tắc|chỉ\s+thị|التعليمات|تعليمات|الإرشادات|القواعد|"
    r"निर्देश|नियमों|说明|指示|指令|规则|提示词|ルール|지침|지시|규칙|инструкц\w*|"
    r"указани\w*|правил\w*|instrucciones|instru[çc][õo]es|consignes|istruzioni|instrukcj\w*|"
    r"polece[nń]\w*|\binstruksi\b|\bpetunjuk\b|\baturan\b|\bmaagizo\b|\bmaelekezo\b|"
    r"instructies|\bregels\b)"
)
_RESOLVED = (
    r"(?:\b(?:resolved|solved|verified|passed|successful|approved)\b|gel[öo]st|erledigt|"
    r"abgeschlossen|bestanden|[çc][öo]z[üu]ld[üu]|[çc][öo]z[üu]lm[üu][şs]|ba[şs]ar[ıi]l[ıi]|"
    r"giải\s+quyết|thành\s+công|محلول\w*|كمحلول\w*|تم\s+حل|ناجح\w*|हल\s+किया|सफल|"
    r"已解决|已處理|解决|通过|成功|解決済|解決|合格|해결|통과|решён\w*|решен\w*|успешн\w*|"
    r"resuelt[oa]|r[ée]solue?s?|risolt[oa]|resolvid[oa]|opgelost|rozwi[ąa]zan\w*|selesai|"
    r"imetatuliwa|aprobad[oa])"
)
_MARK = (
    r"(?:\b(?:mark|set|record|count|treat|consider|rate|score|grade|classify|label|deem)\b|"
    r"i[şs]aretle\w*|\bsay(?:[ıi]n)?\b|kabul\s+et|đánh\s+dấu|coi\s+là|xem\s+là|"
    r"وضع\s+علامة|ضع\s+علامة|اعتبر\w*|صن[ّ]?ف|चिह्नित|मानें|माना\s+जाए|"
    r"标记|判定|视为|记为|算作|にしてください|として評価|評価してください|"
    r"표시하세요|처리하세요|평가하세요|отмет\w*|помет\w*|считай\w*|"
    r"m[áa]rque\w*|marca\w*|calif[íi]que\w*|consid[ée]re[zr]?|\bnotez\b|\boznacz\b|"
    r"\buznaj\b|\btandai\b|\banggap\b|\buweke\b|weka\s+alama|\bmarkeer\b|\bbeoordeel\b|"
    r"bewerten|einstufen|markier\w*|\bwerten\b|\bgilt\s+als\b)"
)
_FULL_SCORE = (
    r"(?:\b(?:full|maximum|highest|top|perfect)\s+(?:marks|score|points|rating)\b|"
    r"volle[rn]?\s+punktzahl|h[öo]chstnote|tam\s+puan|điểm\s+tối\s+đa|الدرجة\s+الكاملة|"
    r"العلامة\s+الكاملة|पूरे\s+अंक|पूर्ण\s+अंक|满分|満点|만점|максимальн\w*\s+балл|"
    r"nota\s+m[áa]xima|note\s+maximale|punteggio\s+massimo|pontua[çc][ãa]o\s+m[áa]xima|"
    r"hoogste\s+score|nilai\s+penuh|alama\s+kamili)"
)

#: Words about an evaluation, its outcome or its material (also used after a fake delimiter).
EVAL_VOCABULARY_RE = re.compile(
    r"\b(?:resolved|verified|verdict|pass(?:ed|es)?|score[sd]?|scoring|evaluat\w+|assess\w*|"
    r"review(?:er)?|conclusion|determination|analysis|result|grad(?:e|ing|er)|rubric|criteri\w+|"
    r"qa|instructions?|judge|success\w*|approved|outcome|confirmed)\b",
    re.IGNORECASE,
)


def _rule(name: str, regex: str, anchors: tuple[str, ...] = (), flags: int = _I) -> Rule:
    return Rule(name, re.compile(regex, flags), anchors=anchors)


# Prefilters: a lower-case piece of every word each concept can match (see Rule.anchors).
# fmt: off
_EVALUATOR_ANCHORS = (
    "judge", "evaluat", "grader", "assessor", "rater", "scorer", "verifier", "reviewer",
    "auditor", "whoever", "who is", "who grad", "who rev", "who eval", "who assess", "who check",
    "who scor", "who read", "anyone read", "anyone rev", "anyone grad", "anyone check",
    "anyone comp", "prüf", "pruf", "gutachter", "bewerter", "beurteiler",
    "valuat", "valut", "correcteur", "examinat", "l'ia", "calificador", "quien", "avaliador",
    "revisore",
    "beoordel", "oceniaj", "weryfikator", "recenzent", "erlendiric", "hakem", "denet", "puanlay",
    "ngư", "ngu", "chấm", "giám", "penilai", "peninjau", "mtathmini", "mkaguzi", "оценщик",
    "проверяющ", "ревьюер", "асессор", "قي", "حك", "دق", "मूल्यांकनकर्ता", "समीक्षक", "परीक्षक",
    "निर्णायक", "जाँचकर्ता", "评", "裁判", "审", "阅卷", "審査", "評価", "採点", "평가자", "심사",
    "채점자", "검토자",
)
_IGNORE_ANCHORS = (
    "ignor", "disregard", "forget", "override", "bypass", "acht", "vergiss", "missacht",
    "yok say", "rmezden", "unut", "bỏ qua", "phớt", "تجاهل", "أهمل", "अनदेखा", "नज", "忽", "无视",
    "不要理会", "無視", "무시", "игнорир", "забуд", "olvid", "oubli", "dimentica", "zignoruj",
    "zapomnij", "abaikan", "lupakan", "puuza", "negeer", "vergeet", "desconsider",
)
_RESOLVED_ANCHORS = (
    "resolved", "solved", "verified", "passed", "successful", "approved", "gelöst", "gelost",
    "erledigt", "abgeschlossen", "bestanden", "zuld", "züld", "zülm", "zulm", "başar", "basar",
    "giải quyết", "thành công", "محلول", "تم حل", "ناجح", "हल", "सफल", "解决", "已處理", "通过",
    "成功", "解決", "合格", "해결", "통과", "решён", "решен", "успешн", "resuelt", "résolu",
    "resolu", "risolt", "resolvid", "opgelost", "rozwi", "selesai", "imetatuliwa", "aprobad",
)
_FULL_SCORE_ANCHORS = (
    "full marks", "full score", "full points", "full rating", "maximum", "highest", "top marks",
    "top score", "top points", "top rating", "perfect marks", "perfect score", "perfect points",
    "perfect rating", "punktzahl", "höchstnote", "hochstnote",
    "tam puan", "tối đa", "الكاملة", "अंक", "满分", "満点", "만점", "балл", "máxima", "maxima",
    "maximale", "massimo", "hoogste", "nilai penuh", "alama kamili",
)
# fmt: on


#: Rules over the cleaned text in its own script, for every author.
ANY_LANGUAGE_RULES: tuple[Rule, ...] = (
    _rule(
        "ignore_instructions",
        rf"{_IGNORE}(?:(?!\b(?:my|our|mein\w*|benim)\b)[^.\n。!?]){{0,30}}?{_INSTRUCTIONS}"
        rf"{NOT_THEIR_OWN_GIVEN}{NOT_THEIR_OWN_MESSAGE}|{_INSTRUCTIONS}[^.\n。!?]{{0,20}}?{_IGNORE}",
        _IGNORE_ANCHORS,
    ),
    _rule(
        "addresses_judge",
        rf"(?:\b(?:to|for|dear|hey|hi|attn|note|memo|an\s+die|an\s+den|f[üu]r\s+den|à|pour|"
        rf"para|per|aan|untuk|kwa)\s+(?:the\s+|any\s+|l'|el\s+|la\s+|o\s+|il\s+|de\s+)?"
        rf"{EVALUATOR})|{EVALUATOR}\s*(?:[,:：、，]|ye\b|için|へ|에게)"
        rf"|(?:gửi|cho|إلى|致|给|к)\s*{EVALUATOR}|{EVALUATOR}\s*(?:के\s+लिए|को)",
        _EVALUATOR_ANCHORS,
    ),
    _rule(
        "mark_as_verdict",
        rf"{_MARK}[^.\n。!?]{{0,40}}?{_RESOLVED}|{_RESOLVED}[^.\n。!?]{{0,12}}?(?:olarak\s+)?"
        rf"(?:i[şs]aretle\w*|\bsay(?:[ıi]n)?\b|के\s+रूप\s+में\s+चिह्नित|मानें|"
        r"にしてください|として|으로\s+표시|로\s+표시)",
        _RESOLVED_ANCHORS,
    ),
    _rule("score_instruction", _FULL_SCORE, _FULL_SCORE_ANCHORS),
)

# A direct injection asks the model to drop what it was given, or to play someone else. Written
# from the misses of rules and detector on the *training* 70 % of the public corpora (deepset's
# "Forget everything before that", "Vergiss alles davor", "You are role-playing as a pirate");
# the held-out 30 % is the figure they are judged by. Only orders count: an imperative verb
# (not "the app ignored ..."), the speaker's own words excluded ("forget everything I said
# before" is a customer correcting themselves), and the dropped thing ending the clause ("forget
# all previously paired devices" is a troubleshooting step; "ignore all of the above" is what
# customers write when they take a message back). "Imagine you are ..." is left out:
# customers vent that way ("imagine you're a parent and ..."). Quantifiers next to optional
# punctuation are possessive: a run of spaces must not be tried every way (quadratic time).
_DROP = (
    r"(?:\b(?:ignore|disregard|forget|vergiss|ignoriere|olvida|olvide|oublie|oubliez|dimentica|"
    r"ignora|zapomnij|zignoruj)\b|\bзабудь|\bигнорируй)"
)
_EVERYTHING = r"(?:everything|all|anything|alles|todo|tout|tutto|wszystko|всё|все)"
_BEFORE = (
    r"(?:before(?:\s+(?:that|this|it))?|previously|prior|above|earlier|davor|zuvor|vorher|"
    r"bisher|antes|avant|prima|wcześniej|раньше|ранее)\b"
)


def _clause_end(words: str) -> str:
    """What must follow: punctuation, the end of the text, or one of ``words`` (``a|b``)."""
    return rf"(?=\s*+(?:[.,;:!?)]|$|(?:{words})\b))"


_NOT_MINE = r"(?!\s+(?:i|we|ich|wir|yo|je|io)\b)(?!\s+(?:that\s+)?(?:i|we)\b)"
_SAID = (
    r"(?:\s+(?:that\s+)?(?:was\s+said|was\s+written|was|said|written|gesagte|geschriebene|"
    r"you\s+(?:were|have\s+been|know|were\s+given|have\s+been\s+given)(?:\s+told)?)\b)?"
)
# An order: at the start of a sentence or clause, or after "please", "now", "just", "okay".
_ORDER_START = r"(?:^|(?<=[.!?:;,])|\b(?:please|now|just|ok(?:ay)?)\b)\s*+"
_YOU_ARE = r"you(?:['’]re|\s+are|\s+were)"
ROLE_RULES: tuple[Rule, ...] = (
    _rule(
        "discard_context",
        rf"{_DROP}\s*+,?\s*+{_EVERYTHING}\b{_NOT_MINE}{_SAID}(?:\s+(?:the|die|das|der)\b)?"
        rf"\s*+[,:]?\s*+{_BEFORE}{_clause_end('and|und|y|et|e')}"
        rf"|{_DROP}\s+(?:(?:all|any|the)\s+)+(?:(?:provided|given|above|previous|prior)\s+)?"
        rf"(?:context|documents?|kontext|dokumente?|contexto|contexte)\b"
        rf"{_clause_end('and|provided|given|above|und')}"
        r"|\bh[öo]re?\s+nicht\s+auf\s+(?:alles|das)\s+(?:zuvor|davor|vorher|bisher)"
        r"|\babweichend\s+(?:zu|von)\s+(?:den\s+)?(?:vorherigen|bisherigen|obigen)\s+"
        r"(?:instruktion\w*|anweisung\w*|vorgaben)"
        r"|\b(?:do\s+not|don['’]?t)\s+(?:look\s+(?:in|at)|read|use)\s+(?:the\s+)?(?:documents?|"
        r"context)\s+(?:provided|given)\b",
    ),
    _rule(
        "role_play",
        rf"\b{_YOU_ARE}\s+(?:now\s+)?role[- ]?playing\s+as\b"
        rf"|{_ORDER_START}(?:role[- ]?play\s+as|pretend\s+to\s+be)\b"
        rf"|\bpretend\s+(?:that\s+)?{_YOU_ARE}\s+(?:now\s+)?(?:the|an?|my)\s+"
        r"(?!(?:customer|client|user|buyer)\b(?!\s+(?:service|support|care)\b))"
        r"|\bpretend\s+(?:that\s+)?you\s+(?:can(?!['’]t)|could(?!n['’]t))\b(?!\s+not\b)"
        r"|\btu\s+so,?\s+als\s+(?:ob\s+du|w[äa]rst\s+du)|\btun\s+sie\s+so,?\s+als\s+"
        r"(?:ob\s+sie|w[äa]ren\s+sie)|\bdu\s+bist\s+(?:jetzt\s+|nun\s+)?(?:keine?|nicht\s+mehr)"
        r"\s+\w+,?\s+sondern\b|\bfinge\s+(?:que\s+eres|ser)\b|\bfais\s+semblant\s+d"
        r"|\bfingi\s+di\s+essere\b",
    ),
    _rule(
        "task_switch",
        r"\bhere\s+comes\s+the\s+(?:second|next)\s+(?:test|task)\b"
        rf"|{_DROP}\s++{_EVERYTHING}(?:\s*+[,.:!]\s*+|\s+(?:and|und)\s+)(?:now\s+|jetzt\s+)?"
        r"(?:just\s+)?(?:write|say|output|print|schreib\w*|sag\w*|gib)\b"
        rf"|{_ORDER_START}(?:now\s+)?(?:write|compose|formulate|schreib\w*|formulier\w*|"
        r"verfass\w*)\s+(?:me\s+|mir\s+|us\s+)?(?:a|an|ein\w*|some|two|three|\d+)\s+"
        r"(?:[\w-]+\s+){0,2}?(?:poem|essay|story|song|manifesto|speech|rap|limerick|haiku|"
        r"propaganda|gedicht|aufsatz|lied|manifest|rede)(?:s|e|en)?\b",
    ),
    _rule(
        "prompt_leak",
        r"\b(?:return|print(?:\s+out)?|reveal|show|output|repeat|tell|give|share|display)\s+"
        r"(?:me\s+|us\s+)?your\s+(?:(?:full|entire|complete|exact)\s+)?(?:embeddings?|"
        r"prompts?|(?:system|initial|original|hidden|secret)\s+(?:prompts?|instructions|messages?))"
        rf"{_clause_end('word|verbatim|and')}",
    ),
)

#: Imitations of the judge prompt's own structure (message headers, delimiters, signals).
FORGED_RULES: tuple[Rule, ...] = (
    _rule(
        "forged_header",
        r"\bmessage\s+\d+\s*[-—–:|]+\s*role\s*[:=]|<<<\s*(?:begin|end|message)\b"
        r"|\bnonce\s*[=:]\s*[0-9a-f]{6,}|\brecorded\s+signals\b[^\n]{0,40}\bplatform"
        r"|^\s*-?\s*customer\s+confirmed\s+the\s+resolution\s*:",
    ),
    _rule(
        "forged_turn",
        r"^\s*[\[(]?(?:customer|user|client|human|me|buyer)[\])]?\s*[:：]\s*[^\n]{0,80}?\b(?:"
        r"thanks?|thank\s+you|works?|worked|fixed|arrived|received|solved|resolved|sorted|"
        r"perfect|great|confirm\w*|close\s+(?:it|this))\b",
    ),
)

#: Agent and tool text that talks about the evaluation, quotes a prior review or a verdict.
META_RULES: tuple[Rule, ...] = (
    _rule("addresses_judge", EVALUATOR, _EVALUATOR_ANCHORS),
    _rule(
        "evaluation_talk",
        r"\b(?:transcript|rubric|resolution\s+criteria|(?:this|the)\s+(?:interaction|"
        r"conversation)\s+meets|first[- ]contact\s+resolution|survive\s+any\s+audit|"
        r"(?:textbook|exemplary|clean|successful)\s+(?:first[- ]contact\s+)?resolution|"
        r"resolved\s+to\s+the\s+customer'?s\s+(?:full\s+)?satisfaction|for\s+the\s+record)\b",
    ),
    _rule(
        "claims_prior_evaluation",
        r"\b(?:review(?:ed|er)?|audit(?:ed|or)?|qa|quality\s+(?:check|review|team)|"
        r"evaluation|assessment|grading|verdict|evaluator\w*|judge)\b[^\n]{0,40}?\b(?:"
        r"resolved|verified|pass(?:ed)?|approved|success(?:ful)?|green|5/5|10/10|100%?|1\.0|"
        r"exemplary|confirmed)(?![\w/])",
    ),
)

#: Only an agent's public messages: agents speak to the customer, not about them, and do not
#: print data shaped like a verdict or a turn of the chat.
AGENT_RULES: tuple[Rule, ...] = (
    _rule(
        "narrates_customer",
        r"\bthe\s+customer(?:'s)?\b(?!\s+(?:service|support|portal|id|number|account|care|"
        r"success|experience)\b)[^.\n]{0,60}?\b(?:is|was|has|had|been|later|confirmed|"
        r"acknowledged|satisfied|happy|thanked|called|agreed|problem|issue)\b",
    ),
    _rule(
        "verdict_like_data",
        r"[\"']?\b(?:outcome|status|result|resolution(?:_status)?|resolved|is_resolved|"
        r"final_answer|passed|met|decision|verdict|quality_score|confidence|scores?)[\"']?\s*"
        r"[:=]\s*[\"']?(?:resolved|verified|pass(?:ed)?|success|true|yes|confirmed|\d+/\d+|"
        r"0?\.\d+|1(?:\.0)?\b|\{)",
    ),
    _rule(
        "forged_turn",
        # A turn at the start of a line, or after a sentence when it says the matter is settled
        # ("Link resent. Customer: ok it works now"); a role word mid-line alone is too common
        # in instructions ("Go to Settings. User: your email").
        r"^\s*[\[(]?(?:customer|user|client|human|buyer)[\])]?\s*[:：]"
        r"|(?<=[.!?])[ \t]+[\[(]?(?:customer|client|buyer)[\])]?\s*[:：]\s*[^\n]{0,80}?\b(?:"
        r"thanks?|thank\s+you|works?|worked|fixed|arrived|received|solved|resolved|sorted|"
        r"perfect|great|confirm\w*|close\s+(?:it|this))\b",
    ),
)

#: A customer may say "you marked this resolved but it isn't"; what a customer has no reason to
#: write is a third party's grade of the ticket, or data shaped like the judge's answer.
CUSTOMER_RULES: tuple[Rule, ...] = (
    _rule(
        "claims_prior_evaluation",
        r"\b(?:reviewer|evaluator|auditor|assessor|grader|judge|qa(?:\s+team)?|"
        r"quality\s+(?:team|check|review))s?\s+(?:(?:has|had|have|already|just|previously|also|"
        r"then)\s+){0,3}(?:marked|rated|scored|graded|"
        r"approved|signed\s+off|classified|flagged)\b[^.\n]{0,40}?\b(?:resolved|verified|"
        r"pass(?:ed)?|approved|complete[d]?|success(?:ful)?|5/5|10/10|100\s*%)(?![\w/])",
    ),
    _rule(
        "verdict_like_data",
        r"\{[^{}]{0,200}?[\"']?\b(?:final_answer|is_resolved|resolved|verdict|decision|passed|"
        r"evaluation|grade|judg(?:e)?ment)\b[\"']?\s*:\s*[\"']?(?:true|yes|pass(?:ed)?|"
        r"verified|resolved|1(?:\.0)?)\b",
    ),
)

#: A source is about the world, not about the report being judged: a source that reports a
#: review of "this report" with a passing result speaks to the evaluator.
SOURCE_RULES: tuple[Rule, ...] = (
    _rule(
        "claims_prior_evaluation",
        r"\b(?:review|audit|check|verification|validation|evaluation|assessment|qa|fact[- ]check)"
        r"\s+of\s+(?:this|the\s+present|the\s+attached)\s+(?:report|summary|analysis|answer|"
        r"response|document|draft|write-?up)\b[^\n]{0,160}?\b(?:approved|verified|accurate|"
        r"correct|accuracy\s+(?:of\s+)?100|passed|confirmed|validated)\b",
    ),
)
