from django.shortcuts import redirect, render

from .forms import NoteForm
from .models import Note


def note_list(request):
    return render(request, "notes/list.html", {"notes": Note.objects.all()})


def note_new(request):
    if request.method == "POST":
        form = NoteForm(request.POST)
        if form.is_valid():
            form.save()
            return redirect("notes:list")
    else:
        form = NoteForm()
    return render(request, "notes/new.html", {"form": form})
