"""The Responses API: ``/v1/responses``, on the chat path, with stored responses."""
