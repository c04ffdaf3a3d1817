// A schedule's form (templates/admin/django_celery_beat/periodictask/change_form.html): the chosen crontab
// in words under the crontab field (leadengine.schedule_words), as django-celery-beat's own form shows it, from
// the page's first view of a schedule.
"use strict";
{
    const $ = django.jQuery;
    const readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
    const crontabHelp = JSON.parse(document.getElementById("crontab-help").textContent);

    const showTranslation = function() {
        const help = $(".field-crontab .help");
        help.text(crontabHelp);
        const words = readableCrontabs[$("#id_crontab").val()];
        if (words !== undefined) {
            help.append($("<br>"), document.createTextNode(`Translation: ${words}`));
        }
    };

    $(".field-crontab_translation").hide();
    $(".field-crontab").change(showTranslation);
    showTranslation();
}
