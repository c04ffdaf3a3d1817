"""Staff roles: Django groups holding the permissions of each desk of the back office. A staff user is given
a role by joining its group in the admin (Users > Groups); superusers need none.

- Lead manager: works the leads (assign, reassign, withdraw, returns, export), the suppression list;
  reads contractors, territories, properties, scores and job runs. No scoring models, no schedules.
- Territory manager: sells and moves ZIP territories (claim, release, transfer, the waitlist) and keeps
  contractors (status, trades, users, API keys, delivery); reads leads and the market.
- Ops: runs the machine: schedules, job runs, scoring models and their activation, imports of market
  data, lead filters; reads everything else.

Each role is the whole of its group's permissions: seeding sets them, adding what is missing and taking
away what was added by hand, so a role means the same on every installation. Other groups are left alone.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

VIEW = ("view",)
EDIT = ("view", "add", "change")
ALL = ("view", "add", "change", "delete")

# role -> {"app_label.model_name": the actions allowed on it}
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "Lead manager": {
        "leads.lead": ("view", "change"),  # change: the lead actions, which move leads through the services
        "leads.leadevent": VIEW,
        "leads.webhookattempt": VIEW,
        "contractors.contractornotice": VIEW,
        "leads.suppression": EDIT,
        "leads.leadfilter": VIEW,
        "contractors.contractor": VIEW,
        "contractors.contractorstatuschange": VIEW,
        "territories.territory": VIEW,
        "territories.waitlistentry": VIEW,
        "scoring.property": VIEW,
        "scoring.score": VIEW,
        "scoring.zipcode": VIEW,
        "scoring.trade": VIEW,
        "scoring.evaluationrun": VIEW,  # lead quality: how each version's leads turned out
        "leadengine.jobrun": VIEW,
    },
    "Territory manager": {
        "territories.territory": EDIT,  # add: claims; change: release and transfer
        "territories.waitlistentry": ALL,
        "contractors.contractor": EDIT,
        "contractors.contractortrade": ALL,
        "contractors.membership": ALL,
        "contractors.apikey": EDIT,
        "contractors.contractorstatuschange": VIEW,
        "contractors.contractornotice": VIEW,
        "leads.lead": VIEW,
        "leads.leadevent": VIEW,
        "scoring.property": VIEW,
        "scoring.score": VIEW,
        "scoring.zipcode": VIEW,
        "scoring.trade": VIEW,
    },
    "Ops": {
        "leadengine.jobrun": EDIT,  # add: run a job now
        "django_celery_beat.periodictask": ALL,
        "django_celery_beat.crontabschedule": ALL,
        "django_celery_beat.intervalschedule": ALL,
        "django_celery_beat.periodictasks": VIEW,
        "scoring.scoringmodel": EDIT,  # change: activate a version
        "scoring.factor": ALL,
        "scoring.scoringrun": VIEW,
        "scoring.evaluationrun": VIEW,  # lead quality (a scoring model's page shows its runs too)
        "scoring.scoringpartition": VIEW,
        "scoring.importrun": EDIT,
        "scoring.importprofile": ALL,  # column maps of the sources ops import
        "scoring.property": EDIT,
        "scoring.stormevent": EDIT,
        "scoring.permit": EDIT,
        "scoring.sale": EDIT,
        "scoring.score": VIEW,
        "scoring.zipcode": VIEW,
        "scoring.trade": EDIT,
        "leads.leadfilter": ALL,
        "leads.lead": VIEW,
        "leads.leadevent": VIEW,
        "leads.webhookattempt": VIEW,
        "contractors.contractor": VIEW,
        "territories.territory": VIEW,
    },
}


class UnknownPermission(Exception):
    """A role names a permission that does not exist (a model renamed or removed)."""


def role_permissions(role: str) -> list[Permission]:
    """The permissions of one role, read from the database; raises UnknownPermission naming any missing."""
    wanted = {
        (label.split(".")[0], f"{action}_{label.split('.')[1]}")
        for label, actions in ROLES[role].items()
        for action in actions
    }
    query = Q()
    for app_label, codename in wanted:
        query |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(query).select_related("content_type"))
    missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
    if missing:
        names = ", ".join(sorted(f"{app}.{codename}" for app, codename in missing))
        raise UnknownPermission(f"role {role!r} names permissions that do not exist: {names} (run migrate first)")
    return found


@transaction.atomic
def roles_seed() -> dict[str, tuple[int, int]]:
    """Create each role's group and set its permissions to exactly the role's; returns, per role, how many
    permissions were added and removed."""
    changes = {}
    for role in ROLES:
        wanted = {permission.pk for permission in role_permissions(role)}
        group, _ = Group.objects.select_for_update().get_or_create(name=role)
        held = set(group.permissions.values_list("pk", flat=True))
        group.permissions.add(*(wanted - held))
        group.permissions.remove(*(held - wanted))
        changes[role] = (len(wanted - held), len(held - wanted))
    return changes
