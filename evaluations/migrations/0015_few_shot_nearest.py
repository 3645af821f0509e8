from django.db import migrations, models

NEAREST = (
    "few-shot-nearest",
    "few-shot-nearest",
    {"k": 3, "order": "nearest-last"},
    "The k train examples nearest the case's input (embedding similarity) as earlier turns.",
)


def add(apps, schema_editor):
    Strategy = apps.get_model("evaluations", "Strategy")
    name, kind, params, description = NEAREST
    Strategy.objects.get_or_create(
        name=name, version=1, defaults={"kind": kind, "params": params, "description": description}
    )


def remove(apps, schema_editor):
    Strategy = apps.get_model("evaluations", "Strategy")
    Strategy.objects.filter(name=NEAREST[0], version=1, arms__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("evaluations", "0014_workerbeat_pid_host")]

    operations = [
        migrations.AlterField(
            model_name="strategy",
            name="kind",
            field=models.CharField(
                choices=[
                    ("zero-shot", "Zero-shot"),
                    ("few-shot", "Few-shot"),
                    ("few-shot-nearest", "Few-shot (nearest examples)"),
                    ("system", "System prompt"),
                    ("cot", "Chain-of-thought"),
                    ("structured", "Structured JSON"),
                    ("plain", "Plain (fine-tuned models)"),
                    ("template", "Template (imported prompt with the case's vars)"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(add, remove),
    ]
