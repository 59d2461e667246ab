// The document upload's progress: the form is sent by XMLHttpRequest so its upload events can
// move the bar; the answer (the base's page with each file's result) then replaces this page.
// Without script the form posts as usual and the same page comes back.
"use strict";
(function () {
  const form = document.getElementById("upload-documents");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  const bar = document.getElementById("upload-progress");
  const state = document.getElementById("upload-state");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    state.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      bar.value = Math.round(100 * e.loaded / e.total);
      state.textContent = "Uploading " + bar.value + "%";
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      state.textContent = "Reading and indexing…";
    });
    xhr.addEventListener("load", function () {
      document.open();
      document.write(xhr.responseText);
      document.close();
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      bar.hidden = true;
      state.textContent = "The upload failed (connection lost); try again.";
    });
    xhr.send(new FormData(form));
  });
})();
