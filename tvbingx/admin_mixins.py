"""Admin building blocks: every staff edit is audited; raw and exchange data is read-only."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from import_export.admin import ExportMixin

from trading.audit import Actor, audit_record, snapshot


class AuditedModelAdmin(admin.ModelAdmin):
    """Writes an AuditEvent (who, before, after) for every add, change and delete made in the admin."""

    def save_model(self, request, obj, form, change):
        before = snapshot(type(obj).objects.get(pk=obj.pk)) if change and obj.pk else {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            after = snapshot(obj)
            if change and after == before:
                return  # nothing on the model itself changed (e.g. only inline rows or secrets, audited apart)
            audit_record(
                actor=Actor.admin(request.user),
                action=f"{obj._meta.model_name}.{'changed' if change else 'created'}",
                instance=obj,
                before=before,
                after=after,
            )

    def save_formset(self, request, form, formset, change):
        """Inline rows (e.g. take-profit levels) are audited one by one."""
        actor = Actor.admin(request.user)
        # "Before" comes from the database: validation has already written the submitted values
        # onto each form's instance, also on rows that are being deleted.
        stored_pks = [inline_form.instance.pk for inline_form in formset.forms if inline_form.instance.pk]
        befores = {obj.pk: snapshot(obj) for obj in formset.model._default_manager.filter(pk__in=stored_pks)}
        with transaction.atomic():
            for deleted_form in formset.deleted_forms:
                if deleted_form.instance.pk:
                    audit_record(
                        actor=actor,
                        action=f"{deleted_form.instance._meta.model_name}.deleted",
                        instance=deleted_form.instance,
                        before=befores.get(deleted_form.instance.pk, {}),
                    )
            super().save_formset(request, form, formset, change)
            for saved in formset.new_objects:
                audit_record(
                    actor=actor, action=f"{saved._meta.model_name}.created", instance=saved, after=snapshot(saved)
                )
            for saved, _changed_fields in formset.changed_objects:
                audit_record(
                    actor=actor,
                    action=f"{saved._meta.model_name}.changed",
                    instance=saved,
                    before=befores.get(saved.pk, {}),
                    after=snapshot(saved),
                )

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit_record(
                actor=Actor.admin(request.user),
                action=f"{obj._meta.model_name}.deleted",
                instance=obj,
                before=snapshot(obj),
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                audit_record(
                    actor=Actor.admin(request.user),
                    action=f"{obj._meta.model_name}.deleted",
                    instance=obj,
                    before=snapshot(obj),
                )
            super().delete_queryset(request, queryset)


class ReadOnlyModelAdmin(ExportMixin, admin.ModelAdmin):
    """Evidence and exchange data: staff can look and export, never add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
