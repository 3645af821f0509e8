from django.db import migrations

BUILTIN = [
    ("zero-shot", "zero-shot", {}, "The input as the user message, with the task's answer format."),
    ("few-shot", "few-shot", {"k": 3}, "k examples from the train split as earlier turns (chosen per case)."),
    ("system", "system", {}, "A system prompt that sets the assistant's role and answer format."),
    (
        "cot",
        "cot",
        {"marker": "Answer:"},
        "Reason step by step; the answer is read after the last 'Answer:'.",
    ),
    ("structured", "structured", {}, 'Answer as JSON {"answer": ...}; the answer field is extracted.'),
    ("plain", "plain", {}, "The input as is, no instruction: for fine-tuned models."),
]


def add(apps, schema_editor):
    Strategy = apps.get_model("evaluations", "Strategy")
    for name, kind, params, description in BUILTIN:
        Strategy.objects.get_or_create(
            name=name, version=1, defaults={"kind": kind, "params": params, "description": description}
        )


def remove(apps, schema_editor):
    Strategy = apps.get_model("evaluations", "Strategy")
    Strategy.objects.filter(name__in=[b[0] for b in BUILTIN], version=1, arms__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("evaluations", "0001_initial")]
    operations = [migrations.RunPython(add, remove)]
