// A list filter whose row is chosen by typing (core/templates/admin/autocomplete_filter.html): the
// admin's select2 autocomplete in the sidebar, its form sent as soon as a row is chosen or cleared.
// Loaded before select2: select2 attaches itself to the global jQuery, which the admin keeps only as
// django.jQuery; it is lent for select2 to load and taken back once the page is ready.
"use strict";
{
    const $ = django.jQuery;
    const lent = window.jQuery === undefined;
    if (lent) {
        window.jQuery = $;
    }

    $(function() {
        if (lent) {
            delete window.jQuery;
        }
        $("form.autocomplete-filter select").on("change", function() {
            if (this.value === "") {
                this.disabled = true;  // cleared: no empty parameter in the address
            }
            this.form.submit();
        });
    });
}
