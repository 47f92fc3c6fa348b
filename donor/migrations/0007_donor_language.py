from django.db import migrations, models

import donor.models


class Migration(migrations.Migration):

    dependencies = [
        ('donor', '0006_sms_messages'),
    ]

    operations = [
        migrations.AddField(
            model_name='donor',
            name='language',
            field=models.CharField(choices=[('en', 'English'), ('sw', 'Kiswahili')], default=donor.models.active_language, max_length=10),
        ),
    ]
